"""Random-effects meta-analysis of per-trial performance estimates (IECV hold-outs).

Model: T(theta_i) ~ N(mu, v_i + tau^2) with T the analysis scale (identity for slopes and
intercepts, logit for C-type statistics, log for ratios; Snell et al., metamisc ``valmeta``
defaults). tau^2 by REML (default; restricted likelihood maximised numerically), DerSimonian-
Laird, or 0 (fixed effect). Pooled mu with Wald (normal) CI, or Hartung-Knapp(-Sidik-Jonkman)
CI with t(k-1); 95% prediction interval mu +- t(k-2) sqrt(tau^2 + SE^2) (Higgins, Thompson &
Spiegelhalter 2009; metamisc ``uvmeta``); I^2 = tau^2 / (tau^2 + s^2) with s^2 the typical
within-study variance (Higgins & Thompson 2002), equal to (Q - df)/Q for DL.
Estimates, CIs and PIs are back-transformed; ``tau``/``tau2`` stay on the analysis scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import optimize, stats

from predict.errors import LbpError
from training.metrics._base import MetricResult

SCALES = ("identity", "logit", "log")
METHODS = ("REML", "DL", "FE")
LOGIT_METRICS = ("c_for_benefit", "c_statistic", "c", "auc", "mbcb")


def _fwd(x: np.ndarray, scale: str) -> np.ndarray:
    if scale == "identity":
        return x
    if scale == "logit":
        if ((x <= 0) | (x >= 1)).any():
            raise LbpError("logit-scale pooling needs estimates (and CI bounds) strictly in (0, 1)")
        return np.log(x / (1 - x))
    if ((x <= 0)).any():
        raise LbpError("log-scale pooling needs positive estimates (and CI bounds)")
    return np.log(x)


def _back(x, scale: str):
    x = np.asarray(x, float)
    if scale == "identity":
        return x
    if scale == "logit":
        return 1 / (1 + np.exp(-x))
    return np.exp(x)


def _deriv(x: np.ndarray, scale: str) -> np.ndarray:
    if scale == "identity":
        return np.ones_like(x)
    if scale == "logit":
        return 1 / (x * (1 - x))
    return 1 / x


def reml_neg_loglik(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Negative restricted log-likelihood (up to a constant) of the random-effects model."""
    w = 1 / (v + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return 0.5 * (np.sum(np.log(v + tau2)) + np.log(np.sum(w)) + np.sum(w * (y - mu) ** 2))


def tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    w = 1 / v
    mu = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - mu) ** 2)
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    return max(0.0, (q - (y.size - 1)) / c) if c > 0 else 0.0


def tau2_reml(y: np.ndarray, v: np.ndarray) -> float:
    if y.size < 2:
        return 0.0
    upper = 10 * (np.var(y, ddof=1) + v.max()) + 1e-12
    res = optimize.minimize_scalar(reml_neg_loglik, bounds=(0.0, upper), args=(y, v), method="bounded",
                                   options={"xatol": 1e-12 * max(upper, 1e-12) + 1e-14, "maxiter": 1000})
    best = float(res.x)
    # polish with a few Fisher-scoring steps (metafor's algorithm) and guard the boundary
    for _ in range(50):
        w = 1 / (v + best)
        P_tr = np.sum(w) - np.sum(w**2) / np.sum(w)
        mu = np.sum(w * y) / np.sum(w)
        r = y - mu
        # REML score / information for tau^2
        Py = w * r
        score = 0.5 * (np.sum(Py**2) - P_tr)
        wsum = np.sum(w)
        # tr(PP) = sum w^2 - 2 sum w^3 / sum w + (sum w^2 / sum w)^2
        info = 0.5 * (np.sum(w**2) - 2 * np.sum(w**3) / wsum + (np.sum(w**2) / wsum) ** 2)
        if info <= 0:
            break
        new = max(0.0, best + score / info)
        if abs(new - best) < 1e-14 + 1e-12 * best:
            best = new
            break
        if reml_neg_loglik(new, y, v) > reml_neg_loglik(best, y, v) + 1e-10:
            break
        best = new
    if reml_neg_loglik(0.0, y, v) <= reml_neg_loglik(best, y, v):
        best = 0.0
    return best


@dataclass(frozen=True)
class PooledResult(MetricResult):
    estimate: float
    ci_low: float
    ci_high: float
    pi_low: float | None
    pi_high: float | None
    se: float
    tau2: float
    tau: float
    i2: float
    q: float
    q_pvalue: float
    k: int
    n_excluded: int
    method: str
    hartung_knapp: bool
    scale: str
    ci_level: float
    labels: list | None = None
    weights: list | None = None


def typical_within_variance(w: np.ndarray) -> float:
    """Higgins & Thompson's typical within-trial variance s^2 = (k - 1) sum w / ((sum w)^2 - sum w^2)
    for inverse-variance weights ``w`` (k >= 2).

    The denominator is computed as sum_i w_i (sum_{j != i} w_j), not as the difference of two
    squares: when one trial's variance is tiny its weight dominates, (sum w)^2 and sum w^2 agree to
    every digit and their difference cancels to 0 (s^2 = inf with a divide-by-zero warning, seen on
    the default data), while the sum of cross products stays exact."""
    w = np.asarray(w, float)
    others = np.array([np.sum(np.delete(w, i)) for i in range(w.size)])
    return float((w.size - 1) * np.sum(w) / np.sum(w * others))


def pool_random_effects(
    estimates: Sequence[float], se: Sequence[float] | None = None, *,
    ci_low: Sequence[float] | None = None, ci_high: Sequence[float] | None = None,
    input_ci_level: float = 0.95, method: str = "REML", hartung_knapp: bool = False,
    scale: str = "identity", ci_level: float = 0.95, labels: Sequence[Any] | None = None,
) -> PooledResult:
    """Pool per-trial estimates (metamisc ``uvmeta``/``valmeta``-style random-effects model).

    Give either ``se`` (on the natural scale; converted to the analysis ``scale`` by the delta
    method) or per-trial ``ci_low``/``ci_high`` (SE on the analysis scale =
    (T(ci_high) - T(ci_low)) / (2 z), as ``valmeta`` does for C-statistics). Trials with a
    non-finite estimate or SE are excluded (counted in ``n_excluded``); a non-positive SE is an
    error. ``k`` = trials pooled; with k = 1 the single estimate is returned with tau = 0 and no
    prediction interval (a PI needs k >= 3).
    """
    if method not in METHODS:
        raise LbpError(f"method must be one of {METHODS}, got {method!r}")
    if scale not in SCALES:
        raise LbpError(f"scale must be one of {SCALES}, got {scale!r}")
    est = np.asarray(estimates, dtype=float).reshape(-1)
    n = est.size
    labs = list(labels) if labels is not None else None
    if labs is not None and len(labs) != n:
        raise LbpError(f"length mismatch: {len(labs)} labels for {n} estimates")
    if se is not None:
        s = np.asarray(se, dtype=float).reshape(-1)
        if s.size != n:
            raise LbpError(f"length mismatch: {s.size} SEs for {n} estimates")
        ok = np.isfinite(est) & np.isfinite(s)
        if (s[ok] <= 0).any():
            raise LbpError("standard errors must be positive")
        y = np.full(n, np.nan)
        v = np.full(n, np.nan)
        y[ok] = _fwd(est[ok], scale)
        v[ok] = (s[ok] * _deriv(est[ok], scale)) ** 2
    elif ci_low is not None and ci_high is not None:
        lo = np.asarray(ci_low, dtype=float).reshape(-1)
        hi = np.asarray(ci_high, dtype=float).reshape(-1)
        if lo.size != n or hi.size != n:
            raise LbpError("length mismatch between estimates and CI bounds")
        ok = np.isfinite(est) & np.isfinite(lo) & np.isfinite(hi)
        if (hi[ok] <= lo[ok]).any():
            raise LbpError("each ci_high must exceed its ci_low (zero-width CI)")
        z = stats.norm.ppf(0.5 + input_ci_level / 2)
        y = np.full(n, np.nan)
        v = np.full(n, np.nan)
        y[ok] = _fwd(est[ok], scale)
        v[ok] = ((_fwd(hi[ok], scale) - _fwd(lo[ok], scale)) / (2 * z)) ** 2
    else:
        raise LbpError("give se, or ci_low and ci_high")
    y, v = y[ok], v[ok]
    k = y.size
    if k == 0:
        raise LbpError("no trial has a finite estimate and standard error to pool")
    if labs is not None:
        labs = [lab for lab, o in zip(labs, ok) if o]

    w_fe = 1 / v
    mu_fe = np.sum(w_fe * y) / np.sum(w_fe)
    q = float(np.sum(w_fe * (y - mu_fe) ** 2))
    q_p = float(stats.chi2.sf(q, k - 1)) if k > 1 else float("nan")
    tau2 = 0.0 if (method == "FE" or k == 1) else (tau2_dl(y, v) if method == "DL" else tau2_reml(y, v))
    w = 1 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    se_mu = float(np.sqrt(1 / np.sum(w)))
    if hartung_knapp and k > 1:
        se_mu = float(np.sqrt(np.sum(w * (y - mu) ** 2) / ((k - 1) * np.sum(w))))
        crit = stats.t.ppf(0.5 + ci_level / 2, k - 1)
    else:
        crit = stats.norm.ppf(0.5 + ci_level / 2)
    s2 = typical_within_variance(w_fe) if k > 1 else np.nan
    i2 = float(tau2 / (tau2 + s2)) if k > 1 and (tau2 + s2) > 0 else 0.0
    if k >= 3:
        half = stats.t.ppf(0.5 + ci_level / 2, k - 2) * np.sqrt(tau2 + se_mu**2)
        pil, pih = float(_back(mu - half, scale)), float(_back(mu + half, scale))
    else:
        pil = pih = None
    return PooledResult(
        float(_back(mu, scale)), float(_back(mu - crit * se_mu, scale)),
        float(_back(mu + crit * se_mu, scale)), pil, pih, se_mu, float(tau2), float(np.sqrt(tau2)),
        i2, q, q_p, k, int(n - k), method, bool(hartung_knapp), scale, ci_level, labs,
        (w / w.sum()).tolist(),
    )


def pool_metric(
    results: Sequence[Any], field: str, *, scale: str | None = None, method: str = "REML",
    hartung_knapp: bool = False, ci_level: float = 0.95, labels: Sequence[Any] | None = None,
) -> PooledResult:
    """Pool one field over per-trial metric results (dataclasses from this package or dicts).

    Reads ``field`` and its CI from ``{field}_ci_low``/``{field}_ci_high`` or, failing that,
    ``ci_low``/``ci_high`` plus ``ci_level``. Default scale: logit for C-type statistics
    (``c_for_benefit``, ``c_statistic``), identity otherwise (slopes, intercepts, AUTOC...).
    """
    if scale is None:
        scale = "logit" if field in LOGIT_METRICS else "identity"
    est, lo, hi, lv = [], [], [], []
    for r in results:
        d = r.to_dict() if hasattr(r, "to_dict") else dict(r)
        if field not in d:
            raise LbpError(f"result has no field {field!r}")
        low = d.get(f"{field}_ci_low", d.get("ci_low"))
        high = d.get(f"{field}_ci_high", d.get("ci_high"))
        nan = float("nan")
        est.append(nan if d[field] is None else d[field])
        lo.append(nan if low is None else low)
        hi.append(nan if high is None else high)
        lv.append(d.get("ci_level", 0.95))
    if len(set(lv)) > 1:
        raise LbpError("per-trial results use different ci_level values")
    return pool_random_effects(est, ci_low=lo, ci_high=hi, input_ci_level=lv[0] if lv else 0.95,
                               method=method, hartung_knapp=hartung_knapp, scale=scale,
                               ci_level=ci_level, labels=labels)
