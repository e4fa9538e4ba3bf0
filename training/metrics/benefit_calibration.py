"""Calibration of predicted individual benefit on randomised data (conventions of
:mod:`training.metrics._base`: benefit > 0 favours the intervention; outcomes oriented by
``higher_is_better``; ``cluster`` = trial).

* :func:`calibration_for_benefit_groups` - grouped calibration for benefit (van Klaveren 2019;
  predieval): observed vs predicted effect per quantile group of predicted benefit.
* :func:`calibration_for_benefit` - regression calibration intercept/slope for benefit.
* :func:`calibration_for_ite` - model-based calibration of ITE (Hoogland et al. 2024, iteval).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from predict.errors import LbpError
from training.orientation import orient
from training.metrics._base import (
    MetricResult,
    Prepared,
    as_1d,
    prepare,
)
from training.metrics._stats import (
    logistic_cov,
    logistic_fit,
    ols_sandwich,
    wald_ci,
)



def _stratified_effect(g: np.ndarray, t: np.ndarray, codes: np.ndarray, binary: bool):
    """Difference in means (oriented) stratified by cluster with Mantel-Haenszel-type weights
    w_k = n1k*n0k/(n1k+n0k). Per-arm variance: sample variance (ddof=1; arms of size 1 borrow
    the arm's variance across clusters) for continuous; Agresti-Caffo adjusted p(1-p)/(n+2)
    for binary (Agresti & Caffo 2000). Returns (estimate, se, n_clusters_used)."""
    ests, ws, vs = [], [], []
    arm_var = {a: (np.var(g[t == a], ddof=1) if (t == a).sum() > 1 else 0.0) for a in (0, 1)}
    for k in np.unique(codes):
        m = codes == k
        g1, g0 = g[m & (t == 1)], g[m & (t == 0)]
        n1, n0 = g1.size, g0.size
        if n1 == 0 or n0 == 0:
            continue
        ests.append(g1.mean() - g0.mean())
        ws.append(n1 * n0 / (n1 + n0))
        if binary:
            def v(x: np.ndarray) -> float:
                s = np.abs(x).sum()  # oriented 0/1 or 0/-1 -> number of events
                pt = (s + 1) / (x.size + 2)
                return pt * (1 - pt) / (x.size + 2)
            vs.append(v(g1) + v(g0))
        else:
            v1 = np.var(g1, ddof=1) if n1 > 1 else arm_var[1]
            v0 = np.var(g0, ddof=1) if n0 > 1 else arm_var[0]
            vs.append(v1 / n1 + v0 / n0)
    if not ests:
        return np.nan, np.nan, 0
    w = np.asarray(ws)
    est = float(np.sum(w * np.asarray(ests)) / w.sum())
    se = float(np.sqrt(np.sum(w**2 * np.asarray(vs))) / w.sum())
    return est, se, len(ests)


@dataclass(frozen=True)
class GroupedCalibrationResult(MetricResult):
    """Per group: predicted (mean predicted benefit) and observed effect with CI."""

    group: np.ndarray
    n: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray
    predicted: np.ndarray
    observed: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_clusters_used: np.ndarray
    n_groups: int
    outcome_type: str
    ci_level: float

    def to_frame(self):
        import pandas as pd

        cols = ["group", "n", "n_treated", "n_control", "predicted", "observed", "se", "ci_low",
                "ci_high", "n_clusters_used"]
        return pd.DataFrame({c: getattr(self, c) for c in cols})


def calibration_for_benefit_groups(
    benefit: Any, y: Any, treat: Any, *, outcome_type: str, higher_is_better: bool,
    cluster: Any = None, n_groups: int = 5, ci_level: float = 0.95,
) -> GroupedCalibrationResult:
    """Grouped calibration for benefit (van Klaveren et al. 2019 JCE 114:72-83; predieval).

    Participants are cut into ``n_groups`` quantile groups of predicted benefit (pooled over
    clusters): group = floor(G * (midrank - 1/2) / n), so groups have equal size up to ties
    and tied predictions stay together (fewer groups may result). In each group:
    predicted = mean predicted benefit; observed = difference in means (continuous) or in
    proportions (binary) of the oriented outcome, intervention minus comparator, stratified by
    cluster with Mantel-Haenszel-type weights (see ``_stratified_effect``); Wald CI (normal).
    Perfect calibration: observed = predicted in every group (identity line).
    """
    from scipy import stats as st
    import pandas as pd

    p = prepare(benefit, y, treat, cluster, outcome_type, higher_is_better)
    if n_groups < 1:
        raise LbpError("n_groups must be >= 1")
    mid_rank = pd.Series(p.benefit).rank(method="average").to_numpy()
    grp = np.floor(n_groups * (mid_rank - 0.5) / p.n).astype(int)
    z = st.norm.ppf(0.5 + ci_level / 2)
    rows = []
    for j, gcode in enumerate(np.unique(grp)):
        m = grp == gcode
        est, se, used = _stratified_effect(p.g[m], p.treat[m], p.codes[m], outcome_type == "binary")
        rows.append((j + 1, m.sum(), p.treat[m].sum(), (1 - p.treat[m]).sum(), p.benefit[m].mean(),
                     est, se, est - z * se, est + z * se, used))
    a = list(zip(*rows))
    arr = [np.asarray(v) for v in a]
    return GroupedCalibrationResult(arr[0], arr[1], arr[2], arr[3], arr[4].astype(float),
                                    arr[5].astype(float), arr[6].astype(float), arr[7].astype(float),
                                    arr[8].astype(float), arr[9], len(rows), outcome_type, ci_level)


# ============================================================================ regression calibration
@dataclass(frozen=True)
class BenefitCalibrationResult(MetricResult):
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    intercept: float
    intercept_ci_low: float
    intercept_ci_high: float
    citl: float
    citl_ci_low: float
    citl_ci_high: float
    n: int
    n_clusters: int
    se_method: str
    ci_level: float


def _design(p: Prepared, prognosis: np.ndarray | None):
    k = p.n_clusters
    D = np.zeros((p.n, k))
    D[np.arange(p.n), p.codes] = 1.0
    cols = [D]
    if prognosis is not None:
        cols.append(prognosis[:, None])
    return np.hstack(cols)


def _auto_se(se: str, p: Prepared) -> str:
    if se == "auto":
        return "cluster" if p.n_clusters >= 2 else "hc3"
    return se


def calibration_for_benefit(
    benefit: Any, y: Any, treat: Any, *, outcome_type: str,
    higher_is_better: bool, cluster: Any = None, prognosis: Any = None,
    se: str = "auto", ci_level: float = 0.95,
) -> BenefitCalibrationResult:
    """Regression calibration for benefit, on the scale of the predicted benefit.

    Model (OLS; a linear-probability model for binary outcomes, so the scale is the risk
    difference like the predicted benefit), with g the oriented outcome and b the predicted
    benefit::

        g_i = alpha_cluster(i) + gamma * prognosis_i + d * b_i + a * treat_i + s * treat_i * b_i + e_i

    ``slope`` = s (ideal 1): observed effect changes by s per unit of predicted benefit.
    ``intercept`` = a (ideal 0): observed effect among patients with predicted benefit 0.
    ``citl`` = a' from the same model with s fixed at 1 (``treat*b`` as offset): mean observed
    minus mean predicted benefit (ideal 0). Perfect calibration (E[g|t=1,x]-E[g|t=0,x] = b(x))
    gives slope 1, intercept 0, citl 0. ``prognosis`` (optional, predicted outcome under the
    comparator, on the y scale) enters as a covariate with free coefficient to reduce noise.
    The main effect d*b is always included, so that s measures effect modification (the
    difference between arms in the slope on b) rather than b's prognostic association;
    randomisation then makes a and s unbiased with or without the prognosis term. Cluster-specific intercepts keep
    the comparison within trial. SE: ``'auto'`` = CR1 cluster-robust with t(G-1) reference when
    there are >= 2 clusters, else HC3 with t(n-p); or choose ``'hc3'``/``'cluster'``.
    """
    p = prepare(benefit, y, treat, cluster, outcome_type, higher_is_better)
    prog = None
    if prognosis is not None:
        prog = orient(as_1d(prognosis, "prognosis", p.n), higher_is_better)
    se = _auto_se(se, p)
    t, b = p.treat.astype(float), p.benefit
    base = np.hstack([_design(p, prog), b[:, None]])
    X = np.hstack([base, t[:, None], (t * b)[:, None]])
    if np.ptp(b[t == 1]) == 0:
        raise LbpError("predicted benefit is constant among the intervention (treat = 1) participants: slope not identifiable")
    beta, cov, df = ols_sandwich(X, p.g, p.codes, se)
    ia, isl = X.shape[1] - 2, X.shape[1] - 1
    a, s = beta[ia], beta[isl]
    alo, ahi = wald_ci(a, np.sqrt(cov[ia, ia]), df, ci_level)
    slo, shi = wald_ci(s, np.sqrt(cov[isl, isl]), df, ci_level)
    X2 = np.hstack([base, t[:, None]])
    beta2, cov2, df2 = ols_sandwich(X2, p.g - t * b, p.codes, se)
    c = beta2[-1]
    clo, chi = wald_ci(c, np.sqrt(cov2[-1, -1]), df2, ci_level)
    return BenefitCalibrationResult(float(s), float(slo), float(shi), float(a), float(alo), float(ahi),
                                    float(c), float(clo), float(chi), p.n, p.n_clusters, se, ci_level)


@dataclass(frozen=True)
class IteCalibrationResult(MetricResult):
    intercept: float
    intercept_ci_low: float
    intercept_ci_high: float
    slope: float
    slope_ci_low: float
    slope_ci_high: float
    n: int
    n_clusters: int
    scale: str
    se_method: str
    ci_level: float


def calibration_for_ite(
    y: Any, treat: Any, y0_pred: Any, y1_pred: Any, *, outcome_type: str,
    higher_is_better: bool, cluster: Any = None, cluster_intercepts: bool = True,
    se: str = "auto", ci_level: float = 0.95,
) -> IteCalibrationResult:
    """Model-based calibration of individual treatment effects (Hoogland et al. 2024; iteval ``cal``).

    Binary: with Z = +1 (intervention) / -1 (comparator), d = logit(p1) - logit(p0) and
    offset = logit(p0) for intervention, logit(p1) for comparator participants, fit
    ``logit P(y=1) = offset [+ cluster intercepts] + a*Z + s*Z*d`` (binomial ML). A correct
    model for the treatment effect gives a = 0, s = 1 (log-odds-ratio scale). Continuous
    (extension, not in iteval): same with identity link on the oriented outcome:
    ``g - g_pred(other arm) = [cluster intercepts] + a*Z + s*Z*(g1_pred - g0_pred)``.
    The reported ``intercept`` is in the benefit direction (sign-flipped for a binary outcome
    where higher is worse); ``slope`` is invariant. ``cluster_intercepts`` (default True; iteval
    has none) makes a and s insensitive to outcome miscalibration-in-the-large per trial.
    SE: binary - quasi-binomial (one cluster) or CR1 (>= 2 clusters); continuous - HC3 or CR1.
    Binary data separated by the offset-adjusted design (Konis's LP test; no maximum-likelihood
    estimate): a and s are Firth's estimates (``training.metrics._stats.logistic_fit_firth``) with
    the same SE formulas evaluated there - Wald intervals, which under separation are rough.
    """
    p = prepare(np.zeros(np.asarray(y).shape[0]), y, treat, cluster, outcome_type, higher_is_better)
    p0 = as_1d(y0_pred, "y0_pred", p.n)
    p1 = as_1d(y1_pred, "y1_pred", p.n)
    t = p.treat.astype(float)
    Z = 2 * t - 1
    base = [np.eye(p.n_clusters)[p.codes]] if cluster_intercepts else []
    se_m = _auto_se(se, p)
    if outcome_type == "binary":
        if ((p0 <= 0) | (p0 >= 1) | (p1 <= 0) | (p1 >= 1)).any():
            raise LbpError("y0_pred and y1_pred must be probabilities strictly between 0 and 1")
        l0, l1 = np.log(p0 / (1 - p0)), np.log(p1 / (1 - p1))
        d = l1 - l0
        off = np.where(t == 1, l0, l1)
        X = np.hstack(base + [Z[:, None], (Z * d)[:, None]])
        beta = logistic_fit(X, p.y, off)
        cov, df = logistic_cov(X, p.y, beta, off, p.codes, "quasi" if se_m == "hc3" else se_m)
        sign = 1.0 if higher_is_better else -1.0
        scale = "log_odds"
    else:
        g0, g1 = orient(p0, higher_is_better), orient(p1, higher_is_better)
        d = g1 - g0
        resp = p.g - np.where(t == 1, g0, g1)
        X = np.hstack(base + [Z[:, None], (Z * d)[:, None]])
        beta, cov, df = ols_sandwich(X, resp, p.codes, se_m)
        sign = 1.0
        scale = "outcome"
    ia, isl = X.shape[1] - 2, X.shape[1] - 1
    a, s = beta[ia], beta[isl]
    alo, ahi = wald_ci(a, np.sqrt(cov[ia, ia]), df, ci_level)
    slo, shi = wald_ci(s, np.sqrt(cov[isl, isl]), df, ci_level)
    if sign < 0:
        a, alo, ahi = -a, -ahi, -alo
    return IteCalibrationResult(float(a), float(alo), float(ahi), float(s), float(slo), float(shi),
                                p.n, p.n_clusters, scale, se_m, ci_level)
