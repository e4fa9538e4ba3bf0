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
    support       the training support of the inputs driving effect modification, for the
                   extrapolation check and interval widening (layout in :mod:`predict.support`;
                   absent in older models: no widening)
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
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(x, -40.0), 40.0)))


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


def _raw(exp: dict, name: str, F: np.ndarray) -> np.ndarray:
    """Raw score of booster ``name`` of ``exp``: the compiled forest when :func:`prepare_export`
    made one (same numbers as LightGBM, summed in the same order), else LightGBM."""
    fo = (exp.get("_forests") or {}).get(name)
    if fo is not None:
        return _fast().forest_raw(fo, F)
    return booster_raw(exp["boosters"][name], F)


_FAST_MOD = None


def _fast():
    """predict._fast, imported on first use (it imports numba when available)."""
    global _FAST_MOD
    if _FAST_MOD is None:
        from predict import _fast as f

        _FAST_MOD = f
    return _FAST_MOD


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
    """Distinct missing-data patterns (rows of booleans, in lexicographic order) and each row's
    pattern index. Rows are packed into integers first (fast for large n)."""
    miss = np.isnan(F)
    n, p = miss.shape
    if n == 0:
        return np.zeros((0, p), bool), np.zeros(0, np.int64)
    if n == 1:
        return miss, np.zeros(1, np.int64)
    if not miss.any():
        return np.zeros((1, p), bool), np.zeros(n, np.int64)
    if 0 < p <= 62:
        w = np.left_shift(np.int64(1), np.arange(p - 1, -1, -1, dtype=np.int64))
        code = miss.astype(np.int64) @ w
        ucode, inv = np.unique(code, return_inverse=True)
        keys = ((ucode[:, None] & w[None, :]) != 0)
        return keys, inv.reshape(-1)
    keys, inv = np.unique(miss, axis=0, return_inverse=True)
    return keys, inv.reshape(-1)


def impute_mean(imp: dict, F: np.ndarray) -> np.ndarray:
    """Conditional mean of the missing features given the observed ones, under the imputer's
    multivariate normal (pooled mean, total covariance: a patient from a new trial)."""
    mu = np.asarray(imp["mean"], float)
    S = np.asarray(imp["cov"], float)
    out = F.copy()
    keys, inv = _patterns(F)
    skey = None if imp.get("_cache") is not None else hash(S.tobytes())
    for k, m in enumerate(keys):
        if not m.any():
            continue
        rows = inv == k
        o = ~m
        cm = np.broadcast_to(mu[m], (rows.sum(), m.sum())).copy()
        if o.any():
            A = _regression_cached(imp, S, m, skey)
            cm += (F[np.ix_(rows, o)] - mu[o]) @ A
        out[np.ix_(rows, m)] = cm
    return _bound(imp, out)


_REG_CACHE: dict = {}


def _regression_cached(imp: dict, S: np.ndarray, m: np.ndarray, skey) -> np.ndarray:
    """A = S_oo^-1 S_om of :func:`_pattern_solve`, cached by covariance (hash of its bytes, then
    checked equal) and pattern for unprepared exports too: training calls ``impute_mean``
    thousands of times on the same few dozen missing-data patterns (same numbers, solved once)."""
    if skey is None:
        return _pattern_solve(imp, S, m, need_L=False)[0]
    entry = _REG_CACHE.get(skey)
    if entry is None or entry[0].shape != S.shape or not np.array_equal(entry[0], S):
        if len(_REG_CACHE) > 64:
            _REG_CACHE.clear()
        entry = _REG_CACHE[skey] = (S.copy(), {})
    key = m.tobytes()
    A = entry[1].get(key)
    if A is None:
        if len(entry[1]) > 4096:
            entry[1].clear()
        A = entry[1][key] = _pattern_solve(imp, S, m, need_L=False)[0]
    return A


def _pattern_solve(imp: dict, S: np.ndarray, m: np.ndarray, need_L: bool = True):
    """For missing pattern ``m``: (A = S_oo^-1 S_om, L with L L' = the conditional covariance of the
    missing given the observed). Cached per pattern when ``imp`` carries a ``_cache`` dict
    (:func:`prepare_export`); the numbers are the same either way."""
    cache = imp.get("_cache")
    key = m.tobytes() if cache is not None else None
    if key is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    o = ~m
    Sc = S[np.ix_(m, m)]
    A = None
    if o.any():
        A = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
        Sc = Sc - S[np.ix_(m, o)] @ A
    if key is None and not need_L:
        return A, None
    L = cond_factor(Sc)
    if key is not None:
        if len(cache) > 4096:
            cache.clear()
        cache[key] = (A, L)
    return A, L


COND_JITTER = (1e-12, 1e-10, 1e-8, 1e-6)  # relative diagonal jitter tried in turn (cond_factor)


def cond_factor(S: np.ndarray) -> np.ndarray:
    """The lower-triangular Cholesky factor L (L L' = S) of a conditional covariance: the draws'
    noise is ``z @ L.T``. Cholesky is unique for a positive-definite matrix and a smooth function
    of it, so the draws (and the intervals built on them) move by rounding only when S moves by
    rounding, on any machine or BLAS; an eigendecomposition is not (eigenvector signs and, for
    close eigenvalues, the basis itself can flip under a 1e-16 change). A semi-definite S (a
    zero-variance feature, an exactly collinear pair; or one made slightly indefinite by
    rounding) gets a diagonal jitter of 1e-12, then 1e-10, 1e-8, 1e-6 times its mean diagonal
    until the factorisation succeeds (a standard deviation of at most 1e-3 of the features'
    typical scale on otherwise degenerate directions); a matrix that still fails is factored
    through its eigenvalues clipped at 0 (symmetric square root; never happens for imputers
    fitted by training.learners.missing, whose covariance is positive definite)."""
    S = (S + S.T) / 2
    if S.size == 0:
        return np.zeros_like(S)
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        pass
    d = np.diag(S)
    scale = float(np.mean(np.abs(d))) or 1.0
    for j in COND_JITTER:
        try:
            return np.linalg.cholesky(S + np.diag(np.full(d.size, j * scale)))
        except np.linalg.LinAlgError:
            continue
    w, V = np.linalg.eigh(S)  # pragma: no cover - pathological input only
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def _bound(imp: dict, F: np.ndarray) -> np.ndarray:
    lo = np.asarray(imp["lower"], float)
    hi = np.asarray(imp["upper"], float)
    return np.minimum(np.maximum(F, lo), hi)  # np.clip, without its overhead


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
        A, L = _pattern_solve(imp, S, m)
        if o.any():
            cm += (F[np.ix_(rows, o)] - mu[o]) @ A
        noise = Z[:, m] @ L.T  # (M, |m|)
        mi = np.flatnonzero(m)
        out[:, rows[:, None], mi[None, :]] = cm[None, :, :] + noise[:, None, :]
    binary = np.asarray(imp["binary"], bool)
    out[:, :, binary] = np.round(out[:, :, binary])
    return _bound(imp, out)


# ----------------------------------------------------------------------------- linear parts
def _pos3(v: np.ndarray) -> np.ndarray:
    """max(v, 0) cubed (as v*v*v: much faster than ** 3 on large arrays)."""
    u = np.maximum(v, 0.0)
    return u * u * u


def rcs(x: np.ndarray, knots) -> np.ndarray:
    """Restricted cubic spline non-linear terms (Harrell), scaled by (t_k - t_1)^2: (n, k-2)."""
    t = np.asarray(knots, float)
    k = t.size
    norm = (t[-1] - t[0]) ** 2
    cols = []
    for j in range(k - 2):
        c = (_pos3(x - t[j])
             - _pos3(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
             + _pos3(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2]))
        cols.append(c / norm)
    return np.column_stack(cols) if cols else np.zeros((x.size, 0))


def basis(cols: list, F: np.ndarray) -> np.ndarray:
    """Standardised basis columns (complete F). The spline terms of one feature and knot set
    are computed once per call."""
    out = np.empty((F.shape[0], len(cols)))
    splines: dict = {}
    for i, c in enumerate(cols):
        x = F[:, c["feature"]]
        if c["kind"] == "linear":
            v = x
        elif c["kind"] == "rcs":
            key = (c["feature"], tuple(c["knots"]))
            R = splines.get(key)
            if R is None:
                R = splines[key] = rcs(x, c["knots"])
            v = R[:, c["term"]]
        elif c["kind"] == "onehot":
            v = (x == c["level"]).astype(float)
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
        out[:, i] = (v - c["loc"]) / c["scale"]
    return out


def _compile_basis(cols: list) -> dict:
    """Arrays to evaluate :func:`basis` in a few vectorised steps (same arithmetic)."""
    lin_pos, lin_feat, oh_pos, oh_feat, oh_level = [], [], [], [], []
    r_pos, r_feat, r_tj, r_t2, r_t1, r_c1, r_c2, r_d, r_norm = [], [], [], [], [], [], [], [], []
    for i, c in enumerate(cols):
        if c["kind"] == "linear":
            lin_pos.append(i)
            lin_feat.append(c["feature"])
        elif c["kind"] == "onehot":
            oh_pos.append(i)
            oh_feat.append(c["feature"])
            oh_level.append(c["level"])
        elif c["kind"] == "rcs":
            t = np.asarray(c["knots"], float)
            k, j = t.size, c["term"]
            r_pos.append(i)
            r_feat.append(c["feature"])
            r_tj.append(t[j])
            r_t2.append(t[k - 2])
            r_t1.append(t[k - 1])
            r_c1.append(t[k - 1] - t[j])
            r_c2.append(t[k - 2] - t[j])
            r_d.append(t[k - 1] - t[k - 2])
            r_norm.append((t[-1] - t[0]) ** 2)
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
    a = lambda v, dt=float: np.asarray(v, dt)  # noqa: E731
    return {"n": len(cols), "lin_pos": a(lin_pos, np.intp), "lin_feat": a(lin_feat, np.intp),
            "oh_pos": a(oh_pos, np.intp), "oh_feat": a(oh_feat, np.intp), "oh_level": a(oh_level),
            "r_pos": a(r_pos, np.intp), "r_feat": a(r_feat, np.intp), "r_tj": a(r_tj), "r_t2": a(r_t2),
            "r_t1": a(r_t1), "r_c1": a(r_c1), "r_c2": a(r_c2), "r_d": a(r_d), "r_norm": a(r_norm),
            "loc": a([c["loc"] for c in cols]), "scale": a([c["scale"] for c in cols])}


def _basis_compiled(plan: dict, F: np.ndarray) -> np.ndarray:
    out = np.empty((F.shape[0], plan["n"]))
    if plan["lin_pos"].size:
        out[:, plan["lin_pos"]] = F[:, plan["lin_feat"]]
    if plan["oh_pos"].size:
        out[:, plan["oh_pos"]] = (F[:, plan["oh_feat"]] == plan["oh_level"]).astype(float)
    if plan["r_pos"].size:
        X = F[:, plan["r_feat"]]
        d = plan["r_d"]
        out[:, plan["r_pos"]] = (_pos3(X - plan["r_tj"])
                                 - _pos3(X - plan["r_t2"]) * plan["r_c1"] / d
                                 + _pos3(X - plan["r_t1"]) * plan["r_c2"] / d) / plan["r_norm"]
    return (out - plan["loc"]) / plan["scale"]


_MEMO = threading.local()


def block_matrix(block: dict | None, F: np.ndarray, centred: bool = True) -> np.ndarray:
    if block is None:
        return np.zeros((F.shape[0], 0))
    memo = getattr(_MEMO, "d", None)
    if memo is not None:  # inside task_scores: each block's basis at each F is computed once
        key = (id(block), id(F), centred)
        hit = memo.get(key)
        if hit is not None and hit[0] is F:
            return hit[1]
    cc = block.get("_cols")
    if cc is not None:
        B = _fast().basis(cc, F)
    else:
        plan = block.get("_plan")
        B = _basis_compiled(plan, F) if plan is not None else basis(block["basis"], F)
    if block["type"] == "index":
        B = B @ np.asarray(block["beta"], float)[:, None]
    if centred:
        B = B - np.asarray(block["center"], float)
    if memo is not None:
        memo[key] = (F, B)  # F is kept alive with its entry: its id cannot be reused meanwhile
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


def _theta_split(lin: dict, C: int):
    hit = lin.get("_split")
    if hit is not None and hit[0] == C and hit[1] is lin["theta"]:
        return hit[2]
    out = _theta_split_(lin, C)
    if isinstance(lin["theta"], np.ndarray):  # prepared (prepare_export): cache with the array it came from
        lin["_split"] = (C, lin["theta"], out)
    return out


def _theta_split_(lin: dict, C: int):
    theta = np.asarray(lin["theta"], float)
    n_prog, n_mod = lin["n_prog"], lin["n_mod"]
    k = theta.size
    return theta, theta[0], theta[1:1 + C], theta[k - n_mod - n_prog: k - n_mod], theta[k - n_mod:]


def linear_eta(lin: dict, comparators: list, F: np.ndarray) -> dict:
    """The linear predictors of :func:`linear_parts` without building the design matrices."""
    memo = getattr(_MEMO, "d", None)
    if memo is not None:
        key = (id(lin), id(F), "eta")
        hit = memo.get(key)
        if hit is not None and hit[0] is F:
            return dict(hit[1])
        eta = _linear_eta(lin, comparators, F)
        memo[key] = (F, eta)
        return dict(eta)
    return _linear_eta(lin, comparators, F)


def _linear_eta(lin: dict, comparators: list, F: np.ndarray) -> dict:
    C = len(comparators)
    theta, b0, offs, beta, gamma = _theta_split(lin, C)
    P = block_matrix(lin["prog"], F, centred=False)
    M = block_matrix(lin.get("modifier"), F)
    if P.shape[1] != beta.size or M.shape[1] != gamma.size or theta.size != 1 + C + beta.size + gamma.size:
        eta, _ = linear_parts(lin, comparators, F)  # unexpected layout: the general form
        return eta
    base = b0 + (P @ beta if beta.size else 0.0)
    if np.ndim(base) == 0:
        base = np.full(F.shape[0], float(base))
    eta = {"__active__": base + (M @ gamma if gamma.size else 0.0)}
    for i, c in enumerate(comparators):
        eta[c] = base + offs[i]
    return eta


_VSUB: dict = {}


def _delta_se(lin: dict, comparators: list, F: np.ndarray, V: np.ndarray, c: str) -> np.ndarray:
    """SE of the benefit vs ``c`` by the delta method (same as the gradient form in
    :func:`estimation_se`), building only the needed columns."""
    C = len(comparators)
    i = list(comparators).index(c)
    theta, b0, offs, beta, gamma = _theta_split(lin, C)
    M = block_matrix(lin.get("modifier"), F)
    n = F.shape[0]
    d = 1 + i
    if lin["link"] == "identity":
        # G = grad_c - grad_active = e_d - [0, .., M]
        q = np.full(n, V[d, d])
        if gamma.size:
            key = (id(V), d)
            sub = _VSUB.get(key)
            if sub is None or sub[0] is not V:  # V's blocks, kept with V (its id is not reused meanwhile)
                mod = np.arange(theta.size - gamma.size, theta.size)
                sub = _VSUB[key] = (V, V[mod, d], V[np.ix_(mod, mod)])
                if len(_VSUB) > 4096:
                    _VSUB.clear()
            q = q - 2 * (M @ sub[1]) + _quad(M, sub[2])
        return np.sqrt(q.clip(0))
    mod = np.arange(theta.size - gamma.size, theta.size)
    eta = linear_eta(lin, comparators, F)
    pa, pc = expit(eta["__active__"]), expit(eta[c])
    wa, wc = pa * (1 - pa), pc * (1 - pc)
    P = block_matrix(lin["prog"], F, centred=False)
    G = np.zeros((n, theta.size))
    G[:, 0] = wa - wc
    G[:, d] = -wc
    G[:, 1 + C: 1 + C + beta.size] = (wa - wc)[:, None] * P
    if gamma.size:
        G[:, mod] = wa[:, None] * M
    return np.sqrt(_quad(G, V).clip(0))


LINEAR_KINDS = ("constant", "effect_model", "risk_model")


def _quad(G: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Row-wise quadratic forms g_i' V g_i (as einsum("ij,jk,ik->i"), through one matrix product)."""
    GV = G @ V
    GV *= G
    return GV.sum(axis=1)


def _arm_se_single(exp: dict, Fimp: np.ndarray, comparator: str, F: np.ndarray | None = None):
    """SE of the expected outcome under exercise and under ``comparator``: delta method on the
    bootstrap covariance for a linear learner with identity link; for tree learners the bootstrap
    variance model per arm (``interval.arm_varmodel``, artifacts from 2026-11-22 on); None otherwise."""
    iv = exp.get("interval") or {}
    arm_vm = iv.get("arm_varmodel")
    if exp["kind"] in ("t_learner", "x_learner", "dr_learner") and isinstance(arm_vm, dict) \
            and iv.get("method") == "varmodel" and comparator in arm_vm and F is not None:
        U = varmodel_design(exp, F, Fimp)
        return tuple(np.sqrt(np.exp(U @ np.asarray(arm_vm[k], float))) for k in ("__active__", comparator))
    lin = exp.get("linear")
    if exp["kind"] not in LINEAR_KINDS or lin is None or lin["link"] != "identity" \
            or exp["interval"].get("method") != "delta":
        return None
    comps = list(exp["comparators"])
    V = np.asarray(exp["interval"]["theta_cov"], float)
    P = block_matrix(lin["prog"], Fimp, centred=False)
    M = block_matrix(lin.get("modifier"), Fimp)
    n, C = Fimp.shape[0], len(comps)
    if V.shape[0] != 1 + C + P.shape[1] + M.shape[1]:  # unexpected layout: the general form
        _, grad = linear_parts(lin, comps, Fimp)
        return tuple(np.sqrt(_quad(grad[k], V).clip(0)) for k in ("__active__", comparator))
    # the gradients of linear_parts for the two classes only
    g_a = np.zeros((n, V.shape[0]))
    g_a[:, 0] = 1.0
    g_a[:, 1 + C: 1 + C + P.shape[1]] = P
    g_a[:, 1 + C + P.shape[1]:] = M
    g_c = g_a.copy()
    g_c[:, 1 + C + P.shape[1]:] = 0.0
    g_c[:, 1 + comps.index(comparator)] = 1.0
    return tuple(np.sqrt(_quad(g, V).clip(0)) for g in (g_a, g_c))


def arm_se(exp: dict, Fimp: np.ndarray, comparator: str, F: np.ndarray | None = None):
    """(SE under exercise, SE under ``comparator``) of the expected continuous outcome from
    estimation: the trial-cluster bootstrap covariance by the delta method (linear learners) or
    the bootstrap's per-arm variance model (tree learners); None where the learner has no per-arm
    uncertainty (tree learners exported before the per-arm model; binary outcomes). A stack adds
    its members' SEs with the stack's coefficients
    (perfect correlation: conservative), as for the benefit. ``F``: the raw features (NaN =
    missing), needed for the tree learners' variance models."""
    if exp.get("outcome_type") != "continuous":
        return None
    if exp["kind"] != "stacked":
        return _arm_se_single(exp, Fimp, comparator, F)
    mem = exp["members"]
    w = np.asarray(mem["weights"], float)
    wn = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
    parts = [_arm_se_single(e, Fimp, comparator, F) for e in mem["exports"]]
    if any(p is None for p in parts):
        return None
    # stack: active = sum wn_i a_i; comparator = active + sum w_i (c_i - a_i)
    se_a = sum(abs(a) * p[0] for a, p in zip(wn, parts))
    se_c = sum(abs(a - b) * p[0] + abs(b) * p[1] for a, b, p in zip(wn, w, parts))
    return se_a, se_c


def arm_missing_variance(exp: dict, F: np.ndarray, comparator: str):
    """One pass over the conditional draws of the patient's missing features: the variance of
    the benefit (comparator - exercise, continuous outcomes; as :func:`missing_variance_fast`, up
    to floating-point rounding) and of the expected outcome under each arm (0 for complete rows).
    Returns (var benefit, var exercise, var comparator)."""
    miss = np.isnan(F).any(axis=1)
    vb, va, vc = np.zeros(F.shape[0]), np.zeros(F.shape[0]), np.zeros(F.shape[0])
    if not miss.any():
        return vb, va, vc
    D = impute_draws(exp["imputer"], F[miss])
    M, n, p = D.shape
    if M < 2:
        return vb, va, vc
    flat = D.reshape(M * n, p)
    ex = _expected(exp, flat, flat)
    a, c = ex["__active__"].reshape(M, n), ex[comparator].reshape(M, n)
    vb[miss] = (c - a).var(axis=0, ddof=1)
    va[miss] = a.var(axis=0, ddof=1)
    vc[miss] = c.var(axis=0, ddof=1)
    return vb, va, vc


# ----------------------------------------------------------------------------- the scorer's fast path
# The same estimands and the same conditional draws as :func:`point`, :func:`estimation_se`,
# :func:`arm_se`, :func:`missing_variance_fast` and :func:`arm_missing_variance` (equal up to
# floating-point rounding; tested), computed without re-imputing per function and, with the
# compiled kernels (predict/_fast.py), without evaluating what does not move between draws:
# a linear learner's predictor is additive over features, so on each draw only the basis columns
# of the patient's missing features change; a tree whose path uses only observed features ends in
# the same leaf on every draw.
def pattern_groups(F: np.ndarray):
    """(keys, inv) of :func:`_patterns`, computed once per batch and shared by every task."""
    return _patterns(F)


def pattern_part(imp: dict, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For missing pattern ``m`` (p booleans): A (p, p; the regression of the missing on the
    observed features, zero elsewhere) and the draws' noise (M, p; Z[:, m] L', zero where
    observed), the same A and L as :func:`impute_mean` / :func:`impute_draws`. Cached per pattern
    in ``imp["_fcache"]`` when :func:`prepare_export` made one."""
    cache = imp.get("_fcache")
    key = m.tobytes()
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    mu = np.asarray(imp["mean"], float)
    S = np.asarray(imp["cov"], float)
    Z = np.asarray(imp["z"], float)
    M, p = Z.shape[0], mu.size
    A, L = _pattern_solve(imp, S, m)
    Af = np.zeros((p, p))
    if A is not None:
        Af[np.ix_(~m, m)] = A
    Nf = np.zeros((M, p))
    Nf[:, m] = Z[:, m] @ L.T
    if cache is not None:
        if len(cache) >= 1024:  # (p x p + M x p) floats each
            cache.clear()
        cache[key] = (Af, Nf)
    return Af, Nf


def impute_mean_fast(imp: dict, F: np.ndarray, groups=None) -> np.ndarray:
    """:func:`impute_mean` through the cached per-pattern regressions (:func:`pattern_part`) and the
    compiled conditional mean when numba is available (same numbers up to rounding)."""
    f = _fast()
    if not (f.AVAILABLE and f.ready()):
        return impute_mean(imp, F)
    keys, inv = groups if groups is not None else _patterns(F)
    A_all, _ = _pattern_parts(imp, keys)
    return _bound(imp, f.cond_mean(F, np.asarray(imp["mean"], float), A_all, inv))


def _pattern_parts(imp: dict, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pattern_part` of every pattern in ``keys`` (K, p), stacked: (K, p, p), (K, M, p);
    zeros for the complete pattern."""
    p = np.asarray(imp["mean"]).size
    M = np.asarray(imp["z"]).shape[0]
    A_all = np.zeros((len(keys), p, p))
    N_all = np.zeros((len(keys), M, p))
    for k, m in enumerate(keys):
        if m.any():
            A_all[k], N_all[k] = pattern_part(imp, m)
    return A_all, N_all


def _block_delta(block: dict | None, coef: np.ndarray, D: np.ndarray, Fim: np.ndarray, miss: np.ndarray,
                 out: np.ndarray) -> None:
    if block is None or coef.size == 0:
        return
    cc = block["_cols"]
    if block["type"] == "index":
        w = np.asarray(block["beta"], float) * coef[0] / cc["scale"]
    else:
        w = coef / cc["scale"]
    _fast().linear_delta(cc, w, D, Fim, miss, out)


def _raw_draws(exp: dict, name: str, D: np.ndarray, miss: np.ndarray) -> np.ndarray:
    return _fast().forest_draws(exp["_forests"][name], D, miss)


def _draws_expected(exp: dict, D: np.ndarray, Fim: np.ndarray, miss: np.ndarray, comparator: str,
                    active_only: bool = False):
    """(exercise, comparator) expected outcomes (n, M) on the draws D (n, M, p): what :func:`_expected`
    gives on the flattened draws. ``Fim``: the conditional-mean imputation of the same rows."""
    kind = exp["kind"]
    n, M = D.shape[0], D.shape[1]
    if kind in LINEAR_KINDS or kind == "t_learner":
        lin = exp["linear"]
        comps = exp["comparators"]
        _, _, _, beta, gamma = _theta_split(lin, len(comps))
        eta = linear_eta(lin, comps, Fim)
        dp = np.zeros((n, M))
        _block_delta(lin["prog"], beta, D, Fim, miss, dp)
        dm = np.zeros((n, M))
        _block_delta(lin.get("modifier"), gamma, D, Fim, miss, dm)
        f = _mean_fn(lin["link"])
        ea = eta["__active__"][:, None] + dp + dm
        if kind == "t_learner":
            ea = ea + _raw_draws(exp, "active", D, miss)
        if active_only:
            return f(ea), None
        ec = eta[comparator][:, None] + dp
        if kind == "t_learner":
            ec = ec + _raw_draws(exp, "control", D, miss)
        return f(ea), f(ec)
    if kind in ("x_learner", "dr_learner"):
        a = _draws_expected(exp["nuisance"], D, Fim, miss, comparator, active_only=True)[0]
        if active_only:
            return a, None
        bc = exp["combine"]["class_benefit"][comparator] + _draws_benefit_h(exp, D, miss)
        return a, (a + bc if exp["outcome_type"] == "continuous" else np.clip(a - bc, 0, 1))
    if kind == "stacked":
        mem = exp["members"]
        w = np.asarray(mem["weights"], float)
        wn = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
        subs = [_draws_expected(e, D, Fim, miss, comparator) for e in mem["exports"]]
        cont = exp["outcome_type"] == "continuous"
        act = sum(wi * s[0] for wi, s in zip(wn, subs))
        bc = sum(wi * ((s[1] - s[0]) if e["outcome_type"] == "continuous" else (s[0] - s[1]))
                 for wi, s, e in zip(w, subs, mem["exports"]))
        return act, (act + bc if cont else np.clip(act - bc, 0, 1))
    raise ValueError(f"unknown learner kind {kind!r}")


def _draws_benefit_h(exp: dict, D: np.ndarray, miss: np.ndarray) -> np.ndarray:
    if exp["kind"] == "x_learner":
        e = exp["combine"]["e"]
        return e * _raw_draws(exp, "tau0", D, miss) + (1 - e) * _raw_draws(exp, "tau1", D, miss)
    return _raw_draws(exp, "tau", D, miss)


def _draws_benefit(exp: dict, D: np.ndarray, Fim: np.ndarray, miss: np.ndarray, comparator: str) -> np.ndarray:
    """The benefit vs ``comparator`` on the draws (n, M): :func:`benefit_only` on the flattened
    draws, skipping what cancels for continuous outcomes."""
    kind = exp["kind"]
    if exp["outcome_type"] != "continuous":
        a, c = _draws_expected(exp, D, Fim, miss, comparator)
        return a - c
    if kind in LINEAR_KINDS or kind == "t_learner":
        lin = exp["linear"]
        if lin["link"] != "identity":
            a, c = _draws_expected(exp, D, Fim, miss, comparator)
            return c - a
        comps = exp["comparators"]
        _, _, offs, _, gamma = _theta_split(lin, len(comps))
        b0 = np.full(Fim.shape[0], offs[list(comps).index(comparator)])
        if gamma.size:
            b0 = b0 - block_matrix(lin.get("modifier"), Fim) @ gamma
        dm = np.zeros((D.shape[0], D.shape[1]))
        _block_delta(lin.get("modifier"), gamma, D, Fim, miss, dm)
        b = b0[:, None] - dm
        if kind == "t_learner":
            b = b + _raw_draws(exp, "control", D, miss) - _raw_draws(exp, "active", D, miss)
        return b
    if kind in ("x_learner", "dr_learner"):
        return exp["combine"]["class_benefit"][comparator] + _draws_benefit_h(exp, D, miss)
    if kind == "stacked":
        mem = exp["members"]
        return sum(w * _draws_benefit(e, D, Fim, miss, comparator) for w, e in zip(mem["weights"], mem["exports"]))
    raise ValueError(f"unknown learner kind {kind!r}")


def fast_ready(exp: dict) -> bool:
    """True when :func:`task_scores` can use the compiled kernels for ``exp`` (prepared by
    :func:`prepare_export` with numba available and every booster and linear layout supported)."""
    return bool(exp.get("_fast_ok"))


def task_scores(exp: dict, F: np.ndarray, comparator: str, arms: bool = False, groups=None) -> dict:
    """Everything the scorer needs for one task and one comparator, in one pass:
    ``exercise``, ``comparator`` (expected outcomes), ``benefit``, ``se_est`` (bootstrap SE of
    the benefit), ``var_missing`` (variance of the benefit over the conditional draws of the
    missing features), and with ``arms`` (continuous outcomes, learners with per-arm SEs)
    ``arm_se`` = (SE exercise, SE comparator) and ``arm_var_missing`` = (var exercise, var
    comparator). Same numbers as the separate functions, up to floating-point rounding.
    ``groups``: :func:`pattern_groups` of F if the caller has it (shared across tasks)."""
    outer = getattr(_MEMO, "d", None)
    _MEMO.d = {} if outer is None else outer
    try:
        return _task_scores(exp, F, comparator, arms, groups)
    finally:
        _MEMO.d = outer


def _task_scores(exp: dict, F: np.ndarray, comparator: str, arms: bool, groups) -> dict:
    imp = exp["imputer"]
    n = F.shape[0]
    cont = exp["outcome_type"] == "continuous"
    keys, inv = groups if groups is not None else _patterns(F)
    fast = fast_ready(exp)
    if fast:
        A_all, N_all = _pattern_parts(imp, keys)
        CM = _fast().cond_mean(F, np.asarray(imp["mean"], float), A_all, inv)
        Fimp = _bound(imp, CM)
    else:
        Fimp = impute_mean(imp, F)
    ex = _expected(exp, F, Fimp)
    a, c = ex["__active__"], ex[comparator]
    out = {"exercise": a, "comparator": c, "benefit": c - a if cont else a - c,
           "se_est": estimation_se(exp, F, Fimp, [comparator])[comparator]}
    se_arm = arm_se(exp, Fimp, comparator, F) if arms and cont else None
    out["arm_se"] = se_arm
    if not fast:
        if se_arm is None:
            out["var_missing"] = missing_variance_fast(exp, F, comparator)
        else:
            vb, va, vc = arm_missing_variance(exp, F, comparator)
            out["var_missing"], out["arm_var_missing"] = vb, (va, vc)
        return out
    vb, va, vc = np.zeros(n), np.zeros(n), np.zeros(n)
    out["var_missing"] = vb
    if se_arm is not None:
        out["arm_var_missing"] = (va, vc)
    rows = np.flatnonzero(np.isnan(F).any(axis=1))
    M = N_all.shape[1]
    if rows.size == 0 or M < 2:
        return out
    f = _fast()
    every = rows.size == n  # then reuse Fimp itself, so the memoised linear parts at Fimp serve the draws too
    D = f.fill_draws(CM if every else CM[rows], inv if every else inv[rows], N_all, np.asarray(imp["binary"], bool),
                     np.asarray(imp["lower"], float), np.asarray(imp["upper"], float))
    miss = np.ascontiguousarray(np.isnan(F if every else F[rows]))
    Fim = Fimp if every else Fimp[rows]
    if se_arm is None:
        vb[rows] = _var_rows(_draws_benefit(exp, D, Fim, miss, comparator))
    else:
        da, dc = _draws_expected(exp, D, Fim, miss, comparator)
        v3 = _var_rows(np.concatenate([dc - da, da, dc], axis=0))  # the three variances in one pass
        k = da.shape[0]
        vb[rows], va[rows], vc[rows] = v3[:k], v3[k:2 * k], v3[2 * k:]
    return out


def _var_rows(a: np.ndarray) -> np.ndarray:
    """``a.var(axis=1, ddof=1)`` (same arithmetic: mean, squared deviations, sum / (M - 1))
    without ndarray.var's Python overhead."""
    d = a - a.sum(axis=1, keepdims=True) / a.shape[1]
    return (d * d).sum(axis=1) / (a.shape[1] - 1)


def _fast_prepare(exp: dict) -> bool:
    """Compile ``exp``'s boosters and linear blocks for the fast path; True if all of it (and its
    sub-exports) is supported."""
    f = _fast()
    if not f.AVAILABLE or not f.ready():
        return False
    ok = True
    b = exp.get("boosters")
    if isinstance(b, dict) and b:
        forests = {}
        for name, model in b.items():
            try:
                fo = f.compile_forest(booster(model))
            except Exception:  # noqa: BLE001 - anything unexpected: LightGBM does it
                fo = None
            if fo is not None:
                forests[name] = fo
            else:
                ok = False
        exp["_forests"] = forests
    lin = exp.get("linear")
    if isinstance(lin, dict):
        C = len(exp.get("comparators") or [])
        sizes = []
        for key in ("prog", "modifier"):
            blk = lin.get(key)
            if blk is None:
                sizes.append(0)
                continue
            try:
                blk["_cols"] = f.compile_columns(blk["basis"])
            except (ValueError, KeyError, TypeError):
                ok = False
                continue
            sizes.append(1 if blk["type"] == "index" else len(blk["basis"]))
        theta = np.asarray(lin["theta"], float)
        if len(sizes) != 2 or sizes != [lin["n_prog"], lin["n_mod"]] or theta.size != 1 + C + sum(sizes):
            ok = False
    for sub in ([exp["nuisance"]] if isinstance(exp.get("nuisance"), dict) else []) + \
            list((exp.get("members") or {}).get("exports") or []):
        ok = _fast_prepare(sub) and ok
    if exp.get("kind") not in LINEAR_KINDS + ("t_learner", "x_learner", "dr_learner", "stacked"):
        ok = False
    return ok


def _mean_fn(link: str):
    return (lambda e: e) if link == "identity" else expit


def prepare_export(exp: dict) -> dict:
    """Make ``exp`` faster to score repeatedly, *in place*: its lists of numbers become float
    arrays and each linear block gets a vectorised evaluation plan (``_plan``). Predictions are
    unchanged. Use it on a private copy only (the result is no longer JSON-serialisable)."""
    f = lambda v: np.asarray(v, float)  # noqa: E731
    imp = exp.get("imputer")
    if isinstance(imp, dict):
        for k in ("mean", "cov", "z", "lower", "upper"):
            if k in imp:
                imp[k] = f(imp[k])
        if "binary" in imp:
            imp["binary"] = np.asarray(imp["binary"], bool)
        imp["_cache"] = {}
        imp["_fcache"] = {}
    lin = exp.get("linear")
    if isinstance(lin, dict):
        lin["theta"] = f(lin["theta"])
        for key in ("prog", "modifier"):
            b = lin.get(key)
            if isinstance(b, dict):
                b["_plan"] = _compile_basis(b["basis"])
                if "center" in b:
                    b["center"] = f(b["center"])
                if "beta" in b:
                    b["beta"] = f(b["beta"])
    iv = exp.get("interval")
    if isinstance(iv, dict):
        if "theta_cov" in iv:
            iv["theta_cov"] = f(iv["theta_cov"])
        if isinstance(iv.get("varmodel"), dict):
            iv["varmodel"] = {c: f(v) for c, v in iv["varmodel"].items()}
        if isinstance(iv.get("design"), dict):
            iv["design"] = {k: f(v) for k, v in iv["design"].items()}
    if isinstance(exp.get("nuisance"), dict):
        prepare_export(exp["nuisance"])
    for sub in (exp.get("members") or {}).get("exports") or []:
        prepare_export(sub)
    return exp


def prepare_fast(exp: dict) -> dict:
    """:func:`prepare_export` plus the compiled kernels of the scorer's fast path (``_forests``,
    ``_cols``; ``_fast_ok`` = usable), in place. Without numba nothing is added and the plain
    functions are used."""
    prepare_export(exp)
    exp["_fast_ok"] = _fast_prepare(exp)
    return exp


# ----------------------------------------------------------------------------- per kind
def _expected(exp: dict, F: np.ndarray, Fimp: np.ndarray, active_only: bool = False) -> dict:
    """Expected outcome per class (keys: comparators and '__active__') at complete Fimp
    (linear parts) and raw F (trees; native NaN handling). ``active_only``: the
    '__active__' entry alone (what X/DR learners need from their nuisance T-learner)."""
    kind = exp["kind"]
    comps = exp["comparators"]
    if kind in ("constant", "effect_model", "risk_model"):
        lin = exp["linear"]
        eta = linear_eta(lin, comps, Fimp)
        f = _mean_fn(lin["link"])
        return {k: f(v) for k, v in eta.items()}
    if kind == "t_learner":
        lin = exp["linear"]
        eta = linear_eta(lin, comps, Fimp)
        Ft = _tree_input(exp, F, Fimp)
        r1 = _raw(exp, "active", Ft)
        f = _mean_fn(lin["link"])
        out = {"__active__": f(eta["__active__"] + r1)}
        if active_only:
            return out
        r0 = _raw(exp, "control", Ft)
        for c in comps:
            out[c] = f(eta[c] + r0)
        return out
    if kind in ("x_learner", "dr_learner"):
        base = _expected(exp["nuisance"], F, Fimp, active_only=True)
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
        return e * _raw(exp, "tau0", Ft) + (1 - e) * _raw(exp, "tau1", Ft)
    return _raw(exp, "tau", Ft)


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


def benefit_only(exp: dict, F: np.ndarray, Fimp: np.ndarray, comparator: str) -> np.ndarray:
    """The benefit vs ``comparator`` alone (what :func:`point` gives, up to floating-point
    rounding), skipping the parts that cancel for continuous outcomes (prognostic terms, the
    active-arm outcome of X/DR learners). Binary outcomes go through :func:`_expected`."""
    kind = exp["kind"]
    if exp["outcome_type"] != "continuous":
        ex = _expected(exp, F, Fimp)
        return ex["__active__"] - ex[comparator]
    comps = exp["comparators"]
    if kind in ("constant", "effect_model", "risk_model", "t_learner"):
        lin = exp["linear"]
        if lin["link"] != "identity":
            ex = _expected(exp, F, Fimp)
            return ex[comparator] - ex["__active__"]
        C = len(comps)
        theta, b0, offs, beta, gamma = _theta_split(lin, C)
        b = np.full(F.shape[0], offs[list(comps).index(comparator)])
        if gamma.size:
            b = b - block_matrix(lin.get("modifier"), Fimp) @ gamma
        if kind == "t_learner":
            Ft = _tree_input(exp, F, Fimp)
            b = b + _raw(exp, "control", Ft) - _raw(exp, "active", Ft)
        return b
    if kind in ("x_learner", "dr_learner"):
        return exp["combine"]["class_benefit"][comparator] + _benefit_h(exp, F, Fimp)
    if kind == "stacked":
        mem = exp["members"]
        return sum(w * benefit_only(e, F, Fimp, comparator) for w, e in zip(mem["weights"], mem["exports"]))
    raise ValueError(f"unknown learner kind {kind!r}")


def missing_variance_fast(exp: dict, F: np.ndarray, comparator: str) -> np.ndarray:
    """:func:`missing_variance` for one comparator through :func:`benefit_only` (same draws;
    equal up to floating-point rounding)."""
    miss_rows = np.isnan(F).any(axis=1)
    out = np.zeros(F.shape[0])
    if not miss_rows.any():
        return out
    Fm = F[miss_rows]
    D = impute_draws(exp["imputer"], Fm)
    M, n, p = D.shape
    stacked = D.reshape(M * n, p)
    ben = benefit_only(exp, stacked, stacked, comparator)
    out[miss_rows] = ben.reshape(M, n).var(axis=0, ddof=1) if M > 1 else 0.0
    return out


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
        V = np.asarray(iv["theta_cov"], float)
        return {c: _delta_se(lin, exp["comparators"], Fimp, V, c) for c in comps}
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
    setting). Both are widened by the extrapolation factor of :mod:`predict.support` for patients
    beyond the training support. Unavailable classes (no training data) are NaN."""
    from predict.support import support_scores

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
        f = support_scores(exp.get("support"), F)["factor"]  # >= 1: widening for extrapolation
        for c in exp["comparators"]:
            se = f * np.sqrt(se_b[c] ** 2 + vm[c])
            tau = float(exp["interval"]["tau"].get(c, 0.0))
            b = ben[c]
            out[f"benefit_vs_{c}_se"] = se
            out[f"benefit_vs_{c}_ci_low"] = np.clip(b - z * se, -lim, lim)
            out[f"benefit_vs_{c}_ci_high"] = np.clip(b + z * se, -lim, lim)
            sp = np.sqrt(se ** 2 + (f * tau) ** 2)
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
    cc = block.get("_cols")
    B = _fast().basis(cc, F) if cc is not None else basis(block["basis"], F)
    if block["type"] == "index":
        w = np.asarray(block["beta"], float) * coef[0]
        ctr = np.asarray(block["center"], float)[0] * coef[0] if centred else 0.0
        loc_share = ctr / len(block["basis"])
        terms = B * w - loc_share
    else:
        ctr = np.asarray(block["center"], float) if centred else np.zeros(B.shape[1])
        terms = (B - ctr) * np.asarray(coef, float)
    # add each feature's columns in column order (as a loop over the columns would), one "slot"
    # (the k-th column of every feature) at a time
    for cols, feats in _feature_slots(block):
        out[:, feats] += terms[:, cols]
    return out


def _feature_slots(block: dict) -> list:
    slots = block.get("_slots")
    if slots is None:
        seen: dict = {}
        by_slot: dict = {}
        for i, c in enumerate(block["basis"]):
            k = seen.get(c["feature"], 0)
            seen[c["feature"]] = k + 1
            by_slot.setdefault(k, ([], []))
            by_slot[k][0].append(i)
            by_slot[k][1].append(c["feature"])
        slots = [(np.asarray(a, np.intp), np.asarray(b, np.intp)) for _, (a, b) in sorted(by_slot.items())]
        block["_slots"] = slots
    return slots


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
        eta = linear_eta(lin, comps, Fimp)
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
