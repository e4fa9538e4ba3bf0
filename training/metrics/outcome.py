"""Outcome-prediction performance (the factual prediction for the arm each patient received).

Continuous: calibration-in-the-large (mean observed - mean predicted), calibration slope (OLS
of y on the prediction), R^2 = 1 - SSE/SST. Binary: calibration-in-the-large (logistic
intercept with logit(prediction) as offset), calibration slope (logistic coefficient of
logit(prediction)), C-statistic (AUC) and Brier score. References: Steyerberg, Clinical
Prediction Models (2019), ch. 15; Van Calster et al. (J Clin Epidemiol 2016;74:167-76);
DeLong, DeLong & Clarke-Pearson (Biometrics 1988); Austin & Steyerberg (Stat Med 2019) for
the smoothed calibration curve and ICI.

Where the prediction separates the outcomes (every event ranked above every non-event: the maximum-
likelihood slope is infinite; before s13f the slope was then NaN) the calibration slope and
intercept are Firth's penalised-likelihood estimates (``training.metrics._stats.logistic_fit_firth``).

CIs: percentile cluster bootstrap (trials resampled; participants resampled if one trial);
for the C-statistic DeLong's variance when there is one cluster (``c_ci='auto'``).
Pooled metrics over several clusters compare patients across clusters; for IECV compute per
held-out trial and pool with :mod:`training.metrics.pooling`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from predict.errors import LbpError
from training.metrics._base import (
    MetricResult,
    as_1d,
    check_binary,
    check_outcome_type,
    cluster_codes,
    fnum,
    rng_of,
    run_bootstrap,
)
from training.metrics._stats import logistic_fit, loess

EPS = 1e-8


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def c_statistic(y: np.ndarray, score: np.ndarray) -> float:
    """AUC = P(score_case > score_noncase) + 1/2 P(tie) (Mann-Whitney)."""
    y = np.asarray(y)
    n1 = int((y == 1).sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise LbpError("C-statistic needs both outcome classes")
    r = stats.rankdata(score)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def delong_se(y: np.ndarray, score: np.ndarray) -> float:
    """DeLong et al. (1988) standard error of the AUC via structural components (midranks)."""
    y = np.asarray(y)
    x, z = score[y == 1], score[y == 0]
    m, n = x.size, z.size
    if m < 2 or n < 2:
        raise LbpError("DeLong SE needs at least 2 cases and 2 non-cases")
    r_all = stats.rankdata(np.concatenate([x, z]))
    rx, rz = stats.rankdata(x), stats.rankdata(z)
    v10 = (r_all[:m] - rx) / n          # for each case: P(score > noncase) + 1/2 tie
    v01 = 1 - (r_all[m:] - rz) / m      # for each noncase: P(case > score) + 1/2 tie
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n
    return float(np.sqrt(var))


def _continuous_stats(y, pred):
    citl = float(np.mean(y - pred))
    vp = np.var(pred)
    slope = float(np.cov(pred, y, bias=True)[0, 1] / vp) if vp > 0 else np.nan
    sst = np.sum((y - y.mean()) ** 2)
    r2 = float(1 - np.sum((y - pred) ** 2) / sst) if sst > 0 else np.nan
    return np.array([citl, slope, r2])


def _binary_stats(y, pred):
    lp = _logit(pred)
    one = np.ones((y.size, 1))
    citl = logistic_fit(one, y, lp)[0]
    try:
        slope = logistic_fit(np.column_stack([one, lp]), y)[1] if np.ptp(lp) > 0 else np.nan
    except LbpError:  # (quasi-)separation: slope not estimable
        slope = np.nan
    auc = c_statistic(y, pred)
    brier = float(np.mean((y - pred) ** 2))
    return np.array([citl, slope, auc, brier])


@dataclass(frozen=True)
class OutcomePerformanceResult(MetricResult):
    outcome_type: str
    n: int
    n_clusters: int
    citl: float
    citl_ci_low: float
    citl_ci_high: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    r2: float | None
    r2_ci_low: float | None
    r2_ci_high: float | None
    c_statistic: float | None
    c_statistic_ci_low: float | None
    c_statistic_ci_high: float | None
    c_statistic_ci_method: str | None
    brier: float | None
    brier_ci_low: float | None
    brier_ci_high: float | None
    n_boot: int
    n_boot_failed: int
    ci_level: float


def _check_pred(y, pred, outcome_type, cluster):
    check_outcome_type(outcome_type)
    y = as_1d(y, "y")
    pred = as_1d(pred, "pred", y.size)
    if y.size < 3:
        raise LbpError(f"need at least 3 participants, got {y.size}")
    if outcome_type == "binary":
        check_binary(y, "y")
        if ((pred < 0) | (pred > 1)).any():
            raise LbpError("pred must be probabilities in [0, 1] for a binary outcome")
    codes, _ = cluster_codes(cluster, y.size)
    return y, pred, codes


def outcome_performance(
    y: Any, pred: Any, *, outcome_type: str, cluster: Any = None,
    n_boot: int = 500, ci_level: float = 0.95, c_ci: str = "auto", bootstrap: str = "two_stage",
    random_state: Any = 0,
) -> OutcomePerformanceResult:
    """Calibration-in-the-large, calibration slope and R^2 (continuous) or C-statistic and
    Brier (binary) of outcome predictions ``pred`` (E[Y|X, arm received]; probabilities for
    binary). Ideal values: citl 0, slope 1, R^2 1 / C 1, Brier 0. ``c_ci``: ``'delong'``,
    ``'bootstrap'`` or ``'auto'`` (DeLong with one cluster, cluster bootstrap otherwise).
    """
    y, pred, codes = _check_pred(y, pred, outcome_type, cluster)
    rng = rng_of(random_state)
    binary = outcome_type == "binary"
    if binary and (y.min() == y.max()):
        raise LbpError("binary outcome has a single class: performance undefined")
    fn = _binary_stats if binary else _continuous_stats
    est = fn(y, pred)
    lo, hi, failed, _ = run_bootstrap(lambda idx, cl: fn(y[idx], pred[idx]), codes,
                                      np.zeros(y.size, int), n_boot, rng, ci_level, scheme=bootstrap)
    m = est.size
    lo = np.full(m, np.nan) if np.ndim(lo) == 0 else lo
    hi = np.full(m, np.nan) if np.ndim(hi) == 0 else hi
    k = int(codes.max()) + 1
    if not binary:
        return OutcomePerformanceResult(outcome_type, y.size, k, est[0], lo[0], hi[0], est[1], lo[1],
                                        hi[1], est[2], lo[2], hi[2], None, None, None, None, None,
                                        None, None, n_boot, failed, ci_level)
    method = c_ci
    if c_ci == "auto":
        method = "delong" if k == 1 else "bootstrap"
    if method == "delong":
        se = delong_se(y, pred)
        z = stats.norm.ppf(0.5 + ci_level / 2)
        clo, chi = max(0.0, est[2] - z * se), min(1.0, est[2] + z * se)
    elif method == "bootstrap":
        clo, chi = lo[2], hi[2]
    else:
        raise LbpError(f"c_ci must be 'auto', 'delong' or 'bootstrap', got {c_ci!r}")
    return OutcomePerformanceResult(outcome_type, y.size, k, est[0], lo[0], hi[0], est[1], lo[1],
                                    hi[1], None, None, None, est[2], fnum(clo), fnum(chi), method,
                                    est[3], lo[3], hi[3], n_boot, failed, ci_level)


@dataclass(frozen=True)
class CalibrationCurveResult(MetricResult):
    grid: np.ndarray
    observed: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    ici: float
    ici_ci_low: float
    ici_ci_high: float
    e50: float
    e90: float
    n: int
    n_clusters: int
    frac: float
    outcome_type: str
    n_boot: int
    n_boot_failed: int
    ci_level: float


def _lowess(x, y, xvals, frac):
    return loess(x, y, xvals, span=frac, degree=1)


def calibration_curve(
    y: Any, pred: Any, *, outcome_type: str, cluster: Any = None,
    frac: float = 2 / 3, n_grid: int = 50, n_boot: int = 200, ci_level: float = 0.95,
    bootstrap: str = "two_stage", random_state: Any = 0,
) -> CalibrationCurveResult:
    """Smoothed calibration curve: lowess (locally linear, tricube weights on the nearest
    ``frac`` of the data, no robustness iterations; :func:`training.metrics._stats.loess`) of observed y on the prediction, evaluated on a grid from
    the 1st to the 99th percentile of predictions, with pointwise percentile cluster-bootstrap
    CIs. ICI = mean |smoothed(pred_i) - pred_i| (Austin & Steyerberg 2019), E50/E90 = median /
    90th percentile of the same absolute differences."""
    y, pred, codes = _check_pred(y, pred, outcome_type, cluster)
    if np.ptp(pred) == 0:
        raise LbpError("predictions are constant: calibration curve undefined")
    grid = np.linspace(*np.quantile(pred, [0.01, 0.99]), n_grid)
    rng = rng_of(random_state)

    def stat(idx, _cl):
        yy, pp = y[idx], pred[idx]
        if np.ptp(pp) == 0:
            raise LbpError("constant predictions in replicate")
        at = _lowess(pp, yy, np.concatenate([grid, pp]), frac)
        err = np.abs(at[n_grid:] - pp)
        return np.concatenate([at[:n_grid], [err.mean(), np.median(err), np.quantile(err, 0.9)]])

    est = stat(np.arange(y.size), codes)
    lo, hi, failed, _ = run_bootstrap(stat, codes, np.zeros(y.size, int), n_boot, rng, ci_level, scheme=bootstrap)
    m = est.size
    lo = np.full(m, np.nan) if np.ndim(lo) == 0 else lo
    hi = np.full(m, np.nan) if np.ndim(hi) == 0 else hi
    return CalibrationCurveResult(grid, est[:n_grid], lo[:n_grid], hi[:n_grid], float(est[n_grid]),
                                  float(lo[n_grid]), float(hi[n_grid]), float(est[n_grid + 1]),
                                  float(est[n_grid + 2]), y.size, int(codes.max()) + 1, frac,
                                  outcome_type, n_boot, failed, ci_level)
