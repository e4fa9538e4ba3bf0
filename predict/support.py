"""How far a patient lies from the training support, and intervals widened for extrapolation.

Computed at scoring time from numbers stored in the model (no sampling, no pickle).

Distance. The learners' imputer already holds a multivariate normal description of the training
participants' inputs (pooled mean ``mu`` and total covariance ``S`` = within + between trials).
For a patient with observed features ``o`` (k of them) the squared Mahalanobis distance
``d2 = (x_o - mu_o)' S_oo^-1 (x_o - mu_o)`` is, for a training participant, roughly chi-square
with k degrees of freedom. The Wilson-Hilferty transform
``z = ((d2 / k)^(1/3) - (1 - 2 / (9k))) / sqrt(2 / (9k))`` puts patients with different numbers of
observed inputs on one roughly standard-normal scale (missing inputs do not count as distance:
they are handled by the imputation and its own interval widening). Because the features are
not Gaussian (binary, skewed), the scale is *calibrated* on the training participants: the model
stores the empirical quantiles of ``z`` over them, the patient's ``percentile`` is the share of
training participants closer to the centre, and ``cut`` is the training 95th percentile of z.

Widening. Beyond the cut the model extrapolates: nothing in the trials says how the benefit
continues, and a smooth but wrong continuation errs roughly in proportion to the squared distance
beyond the data. With ``d_cut`` the Mahalanobis radius that corresponds to ``cut`` for this
patient's k, ``factor = max(1, d / d_cut) ** power`` (``power`` stored, 2 by default) multiplies
both the CI and the PI half-widths (estimation, missing-data and between-trial parts alike).
Patients with ``z`` above the training 99th percentile are called *rare* ("patients like this
were rare in the trials"). This is a stated, simple rule (checked against simulator truth in
``benchmarks/bench_learners.py``: scenario ``plateau`` -> new trial ``edge_trial``), not a
model of the extrapolation error.

Model layout (key ``support`` of a learner export)::

    {"method": "mahalanobis-wh", "features": [indices j used], "mean": [k], "cov": [[k x k]], "quantiles": [21 values of z at
     0, 5, ..., 100%], "cut": z_95, "rare": z_99, "power": 2.0, "n": training participants}
"""
from __future__ import annotations


import numpy as np

METHOD = "mahalanobis-wh"
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)
CUT_LEVEL = 0.95
RARE_LEVEL = 0.99
POWER = 2.0


def _wh(d2: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Wilson-Hilferty standard-normal score of d2 ~ chi2(k); -inf where k == 0."""
    k = np.asarray(k, float)
    out = np.full(d2.shape, -np.inf)
    ok = k > 0
    kk = k[ok]
    c = 2.0 / (9.0 * kk)
    out[ok] = (np.cbrt(d2[ok] / kk) - (1.0 - c)) / np.sqrt(c)
    return out


def _radius2(z: float, k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_wh`: the squared distance with score ``z`` at k degrees of freedom."""
    k = np.asarray(k, float)
    c = 2.0 / (9.0 * np.maximum(k, 1.0))
    return np.maximum(k, 1.0) * np.clip(1.0 - c + z * np.sqrt(c), 0.0, None) ** 3


def mahalanobis(mean, cov, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared Mahalanobis distance over each row's observed features, number observed);
    one Cholesky solve per missing-data pattern."""
    mu = np.asarray(mean, float)
    S = np.asarray(cov, float)
    F = np.asarray(F, float)
    n, p = F.shape
    d2 = np.zeros(n)
    k = np.zeros(n)
    if n == 0:
        return d2, k
    obs = ~np.isnan(F)
    keys, inv = np.unique(obs, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    for j, o in enumerate(keys):
        if not o.any():
            continue
        rows = inv == j
        R = F[np.ix_(rows, o)] - mu[o]
        Soo = S[np.ix_(o, o)]
        try:
            L = np.linalg.cholesky(Soo)
        except np.linalg.LinAlgError:
            L = np.linalg.cholesky(Soo + np.eye(o.sum()) * 1e-9 * max(float(np.mean(np.diag(Soo))), 1e-12))
        W = np.linalg.solve(L, R.T)
        d2[rows] = np.sum(W * W, axis=0)
        k[rows] = o.sum()
    return d2, k


def fit_support(mean, cov, F_train: np.ndarray, features=None, power: float = POWER) -> dict:
    """The ``support`` entry of an export from the training rows' features (NaN = missing):
    ``mean``/``cov`` of all p features, ``features`` the indices the distance uses (default all)."""
    feats = list(range(np.asarray(F_train).shape[1])) if features is None else [int(j) for j in features]
    mean = np.asarray(mean, float)[feats]
    cov = np.asarray(cov, float)[np.ix_(feats, feats)]
    d2, k = mahalanobis(mean, cov, np.asarray(F_train, float)[:, feats])
    z = _wh(d2, k)
    z = z[np.isfinite(z)]
    if z.size == 0:
        z = np.zeros(1)
    q = np.quantile(z, QUANTILE_LEVELS)
    return {"method": METHOD, "features": feats, "mean": [float(v) for v in mean],
            "cov": np.asarray(cov, float).tolist(), "quantiles": [float(v) for v in q],
            "cut": float(np.quantile(z, CUT_LEVEL)), "rare": float(np.quantile(z, RARE_LEVEL)),
            "power": float(power), "n": int(z.size)}


def support_scores(support: dict | None, F: np.ndarray) -> dict:
    """Per patient: ``z`` (calibrated distance score), ``percentile`` (share of training
    participants closer to the centre, 0-100), ``factor`` (interval widening, >= 1) and ``rare``
    (bool). Without a ``support`` entry (older models) factor 1 and nothing rare."""
    n = np.asarray(F).shape[0]
    if not support or not support.get("features"):
        return {"z": np.full(n, np.nan), "percentile": np.full(n, np.nan), "factor": np.ones(n),
                "rare": np.zeros(n, bool)}
    d2, k = mahalanobis(support["mean"], support["cov"], np.asarray(F, float)[:, support["features"]])
    z = _wh(d2, k)
    q = np.asarray(support["quantiles"], float)
    pct = np.where(np.isfinite(z), 100.0 * np.interp(z, q, QUANTILE_LEVELS, left=0.0, right=1.0), 0.0)
    r2 = _radius2(float(support["cut"]), k)
    ratio = np.where(k > 0, np.sqrt(d2 / np.maximum(r2, 1e-12)), 0.0)
    factor = np.maximum(ratio, 1.0) ** float(support.get("power", POWER))
    rare = np.isfinite(z) & (z > float(support["rare"]))
    return {"z": z, "percentile": pct, "factor": factor, "rare": rare}


def widen(estimate: np.ndarray, low: np.ndarray, high: np.ndarray, factor: np.ndarray,
          limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval half-widths multiplied by ``factor`` around ``estimate``, clipped to +-limit.
    (A bound already clipped at the limit stays there.)"""
    lo = np.clip(estimate - factor * (estimate - low), -limit, limit)
    hi = np.clip(estimate + factor * (high - estimate), -limit, limit)
    return lo, hi


def widen_task(exp: dict, F: np.ndarray, estimate: np.ndarray, ci: tuple, pi: tuple) -> tuple[tuple, tuple]:
    """A task's benefit CI and PI (``(low, high)`` arrays over patients) widened for extrapolation
    by the factor of the task's own ``support`` entry (unchanged without one)."""
    sup = exp.get("support")
    if not sup or not sup.get("features"):
        return ci, pi
    f = support_scores(sup, F)["factor"]
    if not (f > 1.0).any():
        return ci, pi
    lim = 1.0 if exp.get("outcome_type") == "binary" else 100.0
    return widen(estimate, ci[0], ci[1], f, lim), widen(estimate, pi[0], pi[1], f, lim)


def rare_patients(exps: list, F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per patient: rare for any task's support, the largest percentile and the largest widening
    factor over the tasks (the "patients like this were rare" warning is worded in
    :mod:`predict.clinical_warnings`)."""
    n = np.asarray(F).shape[0]
    pct = np.zeros(n)
    fac = np.ones(n)
    rare = np.zeros(n, bool)
    for exp in exps:
        s = support_scores(exp.get("support"), F)
        rare |= s["rare"]
        pct = np.fmax(pct, s["percentile"])
        fac = np.maximum(fac, s["factor"])
    return rare, pct, fac
