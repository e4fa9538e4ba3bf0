"""Exported learner state -> predictions, with plain numpy + lightgbm only (the runtime).

Every learner in :mod:`training.learners` keeps its fitted state as one JSON-able dict
(``learner.to_export()``): numbers, lists and LightGBM native model strings
(``booster.model_to_string()``). Predictions, intervals and explanations are *pure functions*
of that dict, defined here, and the learners call these same functions, so an exported model
reproduces ``learner.predict`` exactly (tested after a JSON round trip). This module must not
import ``training``, scikit-learn or pickle: it is the runtime's (``predict``) and
``training.learners.export`` re-exports it for the learners.

Boosters are given as LightGBM native model strings (``booster.model_to_string()``), loaded
with ``lightgbm.Booster(model_str=...)`` and cached; an already-loaded ``lightgbm.Booster`` is
accepted too (the scorer hands over boosters it loaded once from verified artifact bytes).

Export dict layout (``format`` = ``"lbp-benefit-learner"``, ``version`` = 1)::

    kind          "constant" | "effect_model" | "risk_model" | "t_learner" | "x_learner"
                  | "dr_learner" | "stacked"
    outcome_type  "continuous" (0-100, higher = worse) | "binary" (1 = good, e.g. recovery)
    active        the active class ("exercise")
    comparators   comparator classes with estimates; ``unavailable``: classes without data
    features      {"names": [...], "types": [...], "categories": {name: [levels]}}
    imputer       {"mean": [p], "cov": [[p x p]], "z": [[M x p]], "lower": [p], "upper": [p],
                   "binary": [p bools]}  Gaussian conditional imputation for scoring
    linear        (linear kinds, and "base" of tree kinds) {"link", "prog": block,
                   "modifier": block | None, "theta": [intercept, offsets..., beta..., gamma...],
                   "n_prog", "n_mod"}; block = {"type": "basis", "basis": [col specs],
                   "center": [...]} or {"type": "index", "basis": [...], "beta": [...],
                   "center": [c]}; col spec = {"feature": j, "kind": "linear"|"rcs"|"onehot",
                   "knots"|"level", "loc", "scale"}
    boosters      {name: LightGBM model string} (tree kinds): T "active"/"control" (raw score
                   added to the linear base), X "tau1"/"tau0", DR "tau"
    tree_missing  "native" (boosters see NaN) | "impute" (boosters see the imputed matrix)
    nuisance      (X, DR) the embedded T-learner export giving the expected outcome under exercise
    combine       kind-specific numbers (X: {"e"}, X/DR: {"class_benefit": {c: b}})
    members       (stacked) {"weights": [...], "names": [...], "exports": [sub-exports]}
    interval      {"method": "delta" | "varmodel" | "stack", "theta_cov": [[...]] (delta),
                   "varmodel": {c: [coef]}, "design": {"loc", "scale"} (varmodel),
                   "tau": {c: between-trial SD, "__pooled__": SD}, "n_boot": B}
    meta          free-form (outcome, follow-up, trials, selection ...); not used to predict

Estimand (all kinds): for a patient with covariates x, the expected outcome under each class
in an *average* trial (trial effects at their weighted mean) and the benefit of the active
class vs each comparator, positive = active better: continuous E[Y|c,x] - E[Y|active,x];
binary P(Y=1|active,x) - P(Y=1|c,x).
"""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "lbp-benefit-learner"
VERSION = 1
_Z975 = 1.959963984540054
_BOOSTER_CACHE: dict[int, tuple[str, Any]] = {}
_BOOSTER_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- small helpers
def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def norm_ppf(p: float) -> float:
    """Standard normal quantile (Acklam's rational approximation refined by one Newton step)."""
    if p == 0.975:
        return _Z975
    a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
         -3.066479806614716e+01, 2.506628277459239e+00]
    b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
         -1.328068155288572e+01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
         4.374664141464968e+00, 2.938163982698783e+00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    elif p > 1 - plow:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    e = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    return x - e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)


def booster(model_str):
    """A LightGBM Booster from its native text (cached by the string's hash; the text itself is
    kept as the key so two different texts never share a booster). A ``lightgbm.Booster`` is
    returned as is."""
    if not isinstance(model_str, str):
        if hasattr(model_str, "predict") and hasattr(model_str, "model_to_string"):
            return model_str
        raise TypeError(f"a booster must be a LightGBM model string, not {type(model_str).__name__}")
    key = hash(model_str)
    hit = _BOOSTER_CACHE.get(key)
    if hit is not None and hit[0] == model_str:
        return hit[1]
    import lightgbm as lgb

    b = lgb.Booster(model_str=model_str)
    with _BOOSTER_LOCK:
        if len(_BOOSTER_CACHE) > 512:
            _BOOSTER_CACHE.clear()
        _BOOSTER_CACHE[key] = (model_str, b)
    return b


def booster_raw(model_str, F: np.ndarray) -> np.ndarray:
    return booster(model_str).predict(F, raw_score=True, num_threads=1)


def booster_contrib(model_str, F: np.ndarray) -> np.ndarray:
    """TreeSHAP (path-dependent) contributions on the raw scale: (n, p + 1), last = bias."""
    return booster(model_str).predict(F, pred_contrib=True, num_threads=1)


# ----------------------------------------------------------------------------- features
def feature_matrix(features: dict, X: pd.DataFrame) -> np.ndarray:
    """The model's features as a float matrix (NaN = missing). Absent columns are missing;
    categorical values map to their level index (unknown level -> missing)."""
    names, types = features["names"], features["types"]
    cats = features.get("categories", {})
    F = np.full((len(X), len(names)), np.nan)
    for j, (name, typ) in enumerate(zip(names, types)):
        if name not in X.columns:
            continue
        col = X[name]
        if typ == "categorical":
            lv = {str(v): i for i, v in enumerate(cats[name])}
            F[:, j] = [lv.get(str(v), np.nan) if not pd.isna(v) else np.nan for v in col]
        else:
            F[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    return F


def _patterns(F: np.ndarray):
    miss = np.isnan(F)
    keys, inv = np.unique(miss, axis=0, return_inverse=True)
    return keys, inv.reshape(-1)


def impute_mean(imp: dict, F: np.ndarray) -> np.ndarray:
    """Conditional mean of the missing features given the observed ones, under the imputer's
    multivariate normal (pooled mean, total covariance: a patient from a new trial)."""
    mu = np.asarray(imp["mean"], float)
    S = np.asarray(imp["cov"], float)
    out = F.copy()
    keys, inv = _patterns(F)
    for k, m in enumerate(keys):
        if not m.any():
            continue
        rows = inv == k
        o = ~m
        cm = np.broadcast_to(mu[m], (rows.sum(), m.sum())).copy()
        if o.any():
            A = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
            cm += (F[np.ix_(rows, o)] - mu[o]) @ A
        out[np.ix_(rows, m)] = cm
    return _bound(imp, out)


def _bound(imp: dict, F: np.ndarray) -> np.ndarray:
    lo = np.asarray(imp["lower"], float)
    hi = np.asarray(imp["upper"], float)
    return np.clip(F, lo, hi)


def impute_draws(imp: dict, F: np.ndarray) -> np.ndarray:
    """M conditional draws of the missing features (M from the stored standard-normal matrix
    ``z``, so the draws are deterministic): array (M, n, p). Observed entries are kept."""
    mu = np.asarray(imp["mean"], float)
    S = np.asarray(imp["cov"], float)
    Z = np.asarray(imp["z"], float)
    M = Z.shape[0]
    out = np.repeat(F[None, :, :], M, axis=0)
    keys, inv = _patterns(F)
    for k, m in enumerate(keys):
        if not m.any():
            continue
        rows = np.flatnonzero(inv == k)
        o = ~m
        cm = np.broadcast_to(mu[m], (rows.size, m.sum())).copy()
        Sc = S[np.ix_(m, m)]
        if o.any():
            A = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
            cm += (F[np.ix_(rows, o)] - mu[o]) @ A
            Sc = Sc - S[np.ix_(m, o)] @ A
        w, V = np.linalg.eigh((Sc + Sc.T) / 2)
        L = V * np.sqrt(np.clip(w, 0, None))
        noise = Z[:, m] @ L.T  # (M, |m|)
        for mi in range(M):
            out[mi][np.ix_(rows, m)] = cm + noise[mi]
    binary = np.asarray(imp["binary"], bool)
    out[:, :, binary] = np.round(out[:, :, binary])
    return np.stack([_bound(imp, o) for o in out])


# ----------------------------------------------------------------------------- linear parts
def rcs(x: np.ndarray, knots) -> np.ndarray:
    """Restricted cubic spline non-linear terms (Harrell), scaled by (t_k - t_1)^2: (n, k-2)."""
    t = np.asarray(knots, float)
    k = t.size
    norm = (t[-1] - t[0]) ** 2
    cols = []
    for j in range(k - 2):
        c = (np.clip(x - t[j], 0, None) ** 3
             - np.clip(x - t[k - 2], 0, None) ** 3 * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
             + np.clip(x - t[k - 1], 0, None) ** 3 * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2]))
        cols.append(c / norm)
    return np.column_stack(cols) if cols else np.zeros((x.size, 0))


def basis(cols: list, F: np.ndarray) -> np.ndarray:
    """Standardised basis columns (complete F)."""
    out = np.empty((F.shape[0], len(cols)))
    for i, c in enumerate(cols):
        x = F[:, c["feature"]]
        if c["kind"] == "linear":
            v = x
        elif c["kind"] == "rcs":
            v = rcs(x, c["knots"])[:, c["term"]]
        elif c["kind"] == "onehot":
            v = (x == c["level"]).astype(float)
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
        out[:, i] = (v - c["loc"]) / c["scale"]
    return out


def block_matrix(block: dict | None, F: np.ndarray, centred: bool = True) -> np.ndarray:
    if block is None:
        return np.zeros((F.shape[0], 0))
    B = basis(block["basis"], F)
    if block["type"] == "index":
        B = B @ np.asarray(block["beta"], float)[:, None]
    if centred:
        B = B - np.asarray(block["center"], float)
    return B


def linear_parts(lin: dict, comparators: list, F: np.ndarray):
    """Per class, the linear predictor and its gradient in theta:
    eta_c = intercept + offset_c + P beta; eta_active = intercept + P beta + (M - center) gamma."""
    P = block_matrix(lin["prog"], F, centred=False)
    M = block_matrix(lin.get("modifier"), F)
    theta = np.asarray(lin["theta"], float)
    C = len(comparators)
    n = F.shape[0]
    ones = np.ones((n, 1))
    eta, grad = {}, {}
    offs = np.zeros((n, C))
    g_act = np.hstack([ones, offs, P, M])
    eta["__active__"] = g_act @ theta
    grad["__active__"] = g_act
    for i, c in enumerate(comparators):
        o = np.zeros((n, C))
        o[:, i] = 1
        g = np.hstack([ones, o, P, np.zeros_like(M)])
        eta[c] = g @ theta
        grad[c] = g
    return eta, grad


def _mean_fn(link: str):
    return (lambda e: e) if link == "identity" else expit


# ----------------------------------------------------------------------------- per kind
def _expected(exp: dict, F: np.ndarray, Fimp: np.ndarray) -> dict:
    """Expected outcome per class (keys: comparators and '__active__') at complete Fimp
    (linear parts) and raw F (trees; native NaN handling)."""
    kind = exp["kind"]
    comps = exp["comparators"]
    if kind in ("constant", "effect_model", "risk_model"):
        lin = exp["linear"]
        eta, _ = linear_parts(lin, comps, Fimp)
        f = _mean_fn(lin["link"])
        return {k: f(v) for k, v in eta.items()}
    if kind == "t_learner":
        lin = exp["linear"]
        eta, _ = linear_parts(lin, comps, Fimp)
        Ft = _tree_input(exp, F, Fimp)
        r1 = booster_raw(exp["boosters"]["active"], Ft)
        r0 = booster_raw(exp["boosters"]["control"], Ft)
        f = _mean_fn(lin["link"])
        out = {"__active__": f(eta["__active__"] + r1)}
        for c in comps:
            out[c] = f(eta[c] + r0)
        return out
    if kind in ("x_learner", "dr_learner"):
        base = _expected(exp["nuisance"], F, Fimp)
        b = _benefit_h(exp, F, Fimp)
        out = {"__active__": base["__active__"]}
        for c in comps:
            bc = exp["combine"]["class_benefit"][c] + b
            out[c] = base["__active__"] + bc if exp["outcome_type"] == "continuous" else np.clip(base["__active__"] - bc, 0, 1)
        return out
    if kind == "stacked":
        mem = exp["members"]
        w = np.asarray(mem["weights"], float)
        wn = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
        subs = [_expected(e, F, Fimp) for e in mem["exports"]]
        bens = [_benefit_from_expected(e, s) for e, s in zip(mem["exports"], subs)]
        act = sum(wi * s["__active__"] for wi, s in zip(wn, subs))
        out = {"__active__": act}
        for c in comps:
            bc = sum(wi * b[c] for wi, b in zip(w, bens))
            out[c] = act + bc if exp["outcome_type"] == "continuous" else np.clip(act - bc, 0, 1)
        return out
    raise ValueError(f"unknown learner kind {kind!r}")


def _tree_input(exp: dict, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    return F if exp.get("tree_missing", "native") == "native" else Fimp


def _benefit_h(exp: dict, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    Ft = _tree_input(exp, F, Fimp)
    if exp["kind"] == "x_learner":
        e = exp["combine"]["e"]
        return e * booster_raw(exp["boosters"]["tau0"], Ft) + (1 - e) * booster_raw(exp["boosters"]["tau1"], Ft)
    return booster_raw(exp["boosters"]["tau"], Ft)


def _benefit_from_expected(exp: dict, ex: dict) -> dict:
    a = ex["__active__"]
    if exp["outcome_type"] == "continuous":
        return {c: ex[c] - a for c in exp["comparators"]}
    return {c: a - ex[c] for c in exp["comparators"]}


def point(exp: dict, F: np.ndarray, Fimp: np.ndarray | None = None) -> tuple[dict, dict]:
    """(expected per class, benefit per comparator) at the patient's features F (NaN =
    missing; linear parts use the conditional-mean imputation, trees their native NaN rule).
    ``Fimp``: ``impute_mean(exp["imputer"], F)`` if the caller has it already."""
    if Fimp is None:
        Fimp = impute_mean(exp["imputer"], F)
    ex = _expected(exp, F, Fimp)
    return ex, _benefit_from_expected(exp, ex)


def missing_variance(exp: dict, F: np.ndarray, comparators: list | None = None) -> dict:
    """Per comparator, the variance of the predicted benefit over conditional draws of the
    patient's missing features (0 for complete rows): the information lost by not knowing them.
    ``comparators``: only these (default all)."""
    miss_rows = np.isnan(F).any(axis=1)
    comps = exp["comparators"] if comparators is None else list(comparators)
    out = {c: np.zeros(F.shape[0]) for c in comps}
    if not miss_rows.any():
        return out
    Fm = F[miss_rows]
    D = impute_draws(exp["imputer"], Fm)
    M, n, p = D.shape
    stacked = D.reshape(M * n, p)
    ex = _expected(exp, stacked, stacked)
    ben = _benefit_from_expected(exp, ex)
    for c in comps:
        out[c][miss_rows] = ben[c].reshape(M, n).var(axis=0, ddof=1) if M > 1 else 0.0
    return out


def estimation_se(exp: dict, F: np.ndarray, Fimp: np.ndarray | None = None, comparators: list | None = None) -> dict:
    """Per comparator, the SE of the predicted benefit from the trial-cluster bootstrap
    (delta method on the bootstrap covariance for linear kinds; the stored variance model for
    tree kinds; the weighted sum of member SEs for a stack, i.e. perfectly correlated)."""
    iv = exp["interval"]
    comps = exp["comparators"] if comparators is None else list(comparators)
    if Fimp is None:
        Fimp = impute_mean(exp["imputer"], F)
    if iv["method"] == "delta":
        lin = exp["linear"]
        eta, grad = linear_parts(lin, exp["comparators"], Fimp)
        V = np.asarray(iv["theta_cov"], float)
        out = {}
        for c in comps:
            if lin["link"] == "identity":
                G = grad[c] - grad["__active__"]
            else:
                pa, pc = expit(eta["__active__"]), expit(eta[c])
                G = (pa * (1 - pa))[:, None] * grad["__active__"] - (pc * (1 - pc))[:, None] * grad[c]
            out[c] = np.sqrt(np.einsum("ij,jk,ik->i", G, V, G).clip(0))
        return out
    if iv["method"] == "varmodel":
        U = varmodel_design(exp, F, Fimp)
        return {c: np.sqrt(np.exp(U @ np.asarray(iv["varmodel"][c], float))) for c in comps}
    if iv["method"] == "stack":
        mem = exp["members"]
        ses = [estimation_se(e, F, Fimp, comps) for e in mem["exports"]]
        return {c: sum(w * s[c] for w, s in zip(mem["weights"], ses)) for c in comps}
    raise ValueError(f"unknown interval method {iv['method']!r}")


def varmodel_design(exp: dict, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    """[1, standardised imputed features, missing indicators] for the bootstrap-variance model."""
    vm = exp["interval"]["design"]
    Z = (Fimp - np.asarray(vm["loc"], float)) / np.asarray(vm["scale"], float)
    return np.hstack([np.ones((F.shape[0], 1)), Z, np.isnan(F).astype(float)])


def predict_from_export(exp: dict, X: pd.DataFrame, intervals: bool = True, level: float = 0.95) -> pd.DataFrame:
    """Predictions from an exported learner: ``expected_<class>`` for the active class and every
    comparator, ``benefit_vs_<c>`` (positive = active better), and with ``intervals``
    ``benefit_vs_<c>_se``, ``_ci_low``/``_ci_high`` (confidence interval for the patient's
    benefit in an average trial: bootstrap SE combined with the spread over the patient's
    missing covariates) and ``_pi_low``/``_pi_high`` (adds the between-trial SD tau: a new
    setting). Unavailable classes (no training data) are NaN."""
    F = feature_matrix(exp["features"], X)
    ex, ben = point(exp, F)
    out = {f"expected_{exp['active']}": ex["__active__"]}
    for c in exp["comparators"]:
        out[f"expected_{c}"] = ex[c]
    for c in exp.get("unavailable", []):
        out[f"expected_{c}"] = np.full(len(X), np.nan)
    for c in exp["comparators"]:
        out[f"benefit_vs_{c}"] = ben[c]
    for c in exp.get("unavailable", []):
        out[f"benefit_vs_{c}"] = np.full(len(X), np.nan)
    if intervals:
        z = norm_ppf(0.5 + level / 2)
        se_b = estimation_se(exp, F)
        vm = missing_variance(exp, F)
        lim = 1.0 if exp["outcome_type"] == "binary" else 100.0
        for c in exp["comparators"]:
            se = np.sqrt(se_b[c] ** 2 + vm[c])
            tau = float(exp["interval"]["tau"].get(c, 0.0))
            b = ben[c]
            out[f"benefit_vs_{c}_se"] = se
            out[f"benefit_vs_{c}_ci_low"] = np.clip(b - z * se, -lim, lim)
            out[f"benefit_vs_{c}_ci_high"] = np.clip(b + z * se, -lim, lim)
            sp = np.sqrt(se ** 2 + tau ** 2)
            out[f"benefit_vs_{c}_pi_low"] = np.clip(b - z * sp, -lim, lim)
            out[f"benefit_vs_{c}_pi_high"] = np.clip(b + z * sp, -lim, lim)
        for c in exp.get("unavailable", []):
            for s in ("se", "ci_low", "ci_high", "pi_low", "pi_high"):
                out[f"benefit_vs_{c}_{s}"] = np.full(len(X), np.nan)
    return pd.DataFrame(out, index=X.index)


# ----------------------------------------------------------------------------- explanations
def _linear_terms(lin: dict, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per feature: the active-arm modifier term (M - center) gamma split by feature, and the
    prognostic term P beta split by feature: (n, p) each, plus the gamma-part total."""
    p = F.shape[1]
    n_prog, n_mod = lin["n_prog"], lin["n_mod"]
    theta = np.asarray(lin["theta"], float)
    beta = theta[len(theta) - n_mod - n_prog: len(theta) - n_mod]
    gamma = theta[len(theta) - n_mod:]
    prog = _block_by_feature(lin["prog"], F, beta, p, centred=False)
    mod = _block_by_feature(lin.get("modifier"), F, gamma, p, centred=True)
    return prog, mod, gamma


def _block_by_feature(block, F, coef, p, centred):
    out = np.zeros((F.shape[0], p))
    if block is None or len(coef) == 0:
        return out
    B = basis(block["basis"], F)
    if block["type"] == "index":
        w = np.asarray(block["beta"], float) * coef[0]
        ctr = np.asarray(block["center"], float)[0] * coef[0] if centred else 0.0
        loc_share = ctr / len(block["basis"])
        for i, c in enumerate(block["basis"]):
            out[:, c["feature"]] += B[:, i] * w[i] - loc_share
        return out
    ctr = np.asarray(block["center"], float) if centred else np.zeros(B.shape[1])
    for i, c in enumerate(block["basis"]):
        out[:, c["feature"]] += (B[:, i] - ctr[i]) * coef[i]
    return out


def explain_from_export(exp: dict, X: pd.DataFrame, comparator: str) -> pd.DataFrame:
    """Per-patient contributions of each feature to ``benefit_vs_<comparator>``, in outcome
    units (continuous: points on 0-100; binary: risk difference), with columns ``base``
    (benefit at the reference), one column per feature and ``residual`` so that
    base + sum(features) + residual = predicted benefit exactly.

    Continuous linear kinds: exact additive terms (residual 0). Continuous tree kinds:
    TreeSHAP (LightGBM ``pred_contrib``, path-dependent) of the boosters entering the benefit
    (residual 0). Binary outcomes: first-order (delta-method) terms p(1-p) x logit-scale
    contribution per arm; the non-linearity of the logistic link goes to ``residual``.
    Missing features: linear kinds explain the imputed value; trees their native missing rule.
    """
    names = exp["features"]["names"]
    F = feature_matrix(exp["features"], X)
    Fimp = impute_mean(exp["imputer"], F)
    base, contrib = _explain(exp, F, Fimp, comparator)
    _, ben = point(exp, F)
    df = pd.DataFrame(contrib, columns=names, index=X.index)
    df.insert(0, "base", base)
    df["residual"] = ben[comparator] - base - contrib.sum(axis=1)
    return df


def _explain(exp: dict, F: np.ndarray, Fimp: np.ndarray, comparator: str):
    kind, comps = exp["kind"], exp["comparators"]
    n, p = F.shape
    cont = exp["outcome_type"] == "continuous"
    if kind in ("constant", "effect_model", "risk_model", "t_learner"):
        lin = exp["linear"]
        eta, _ = linear_parts(lin, comps, Fimp)
        prog, mod, _ = _linear_terms(lin, Fimp)
        c_act, c_cmp = prog + mod, prog.copy()
        if kind == "t_learner":
            Ft = _tree_input(exp, F, Fimp)
            s1 = booster_contrib(exp["boosters"]["active"], Ft)
            s0 = booster_contrib(exp["boosters"]["control"], Ft)
            c_act = c_act + s1[:, :p]
            c_cmp = c_cmp + s0[:, :p]
            eta = {"__active__": eta["__active__"] + s1.sum(1), comparator: eta[comparator] + s0.sum(1)}
        if cont:
            contrib = c_cmp - c_act
            total = eta[comparator] - eta["__active__"]
            return total - contrib.sum(1), contrib
        pa, pc = expit(eta["__active__"]), expit(eta[comparator])
        contrib = (pa * (1 - pa))[:, None] * c_act - (pc * (1 - pc))[:, None] * c_cmp
        # reference: the linear predictors with every feature term removed (constant per model)
        base = expit(eta["__active__"] - c_act.sum(1)) - expit(eta[comparator] - c_cmp.sum(1))
        return base, contrib
    if kind in ("x_learner", "dr_learner"):
        Ft = _tree_input(exp, F, Fimp)
        if kind == "x_learner":
            e = exp["combine"]["e"]
            s = e * booster_contrib(exp["boosters"]["tau0"], Ft) + (1 - e) * booster_contrib(exp["boosters"]["tau1"], Ft)
        else:
            s = booster_contrib(exp["boosters"]["tau"], Ft)
        b0 = exp["combine"]["class_benefit"][comparator] + s[:, p]
        return b0, s[:, :p]
    if kind == "stacked":
        mem = exp["members"]
        base = np.zeros(n)
        contrib = np.zeros((n, p))
        for w, e in zip(mem["weights"], mem["exports"]):
            b, c = _explain(e, F, Fimp, comparator)
            base += w * b
            contrib += w * c
        return base, contrib
    raise ValueError(f"unknown learner kind {kind!r}")
