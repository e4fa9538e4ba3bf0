"""Metrics for predicted individual benefit (treatment-effect predictions) on randomised data.

All functions follow the conventions in :mod:`training.metrics._base`: ``benefit`` > 0 means
exercise is better; ``higher_is_better`` turns observed outcomes to the same sign
(oriented outcome ``g``); ``treat`` is 1 for exercise; ``cluster`` (trial) is optional and,
when given, matching/grouping is within cluster and CIs come from a cluster bootstrap.

Metrics
-------
* :func:`c_for_benefit` - van Klaveren et al. (J Clin Epidemiol 2018;94:59-68), matching on
  predicted benefit or on covariates (Mahalanobis, as HTEPredictionMetrics), with a
  continuous-outcome extension.
* :func:`calibration_for_benefit_groups` - grouped calibration for benefit (van Klaveren 2019;
  predieval): observed vs predicted effect per quantile group of predicted benefit.
* :func:`calibration_for_benefit` - regression calibration intercept/slope for benefit.
* :func:`calibration_for_ite` - model-based calibration of ITE (Hoogland et al. 2024, iteval).
* :func:`e_for_benefit` - Eavg/E50/E90 for benefit (Maas et al. 2023).
* :func:`rank_average_treatment_effect` - TOC curve, AUTOC and Qini coefficient (Yadlowsky et
  al.; grf ``rank_average_treatment_effect``) with doubly-robust scores and known propensity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from predict.errors import LbpError
from training.orientation import orient
from training.metrics._base import (
    MetricResult,
    Prepared,
    as_1d,
    as_2d,
    fnum,
    prepare,
    propensity_array,
    rng_of,
    run_bootstrap,
)
from training.metrics._stats import (
    logistic_cov,
    logistic_fit,
    loess,
    ols_sandwich,
    stratified_concordance,
    wald_ci,
)

MATCH_METHODS = ("benefit", "covariates")
PAIR_PREDICTIONS = ("mean", "cross")


# ============================================================================ matching
def _pairs_by_benefit(b: np.ndarray, t: np.ndarray, codes: np.ndarray, rng: np.random.Generator):
    tr, co = [], []
    for k in np.unique(codes):
        it = np.flatnonzero((codes == k) & (t == 1))
        ic = np.flatnonzero((codes == k) & (t == 0))
        m = min(it.size, ic.size)
        if m == 0:
            continue
        if it.size > m:
            it = rng.choice(it, m, replace=False)
        if ic.size > m:
            ic = rng.choice(ic, m, replace=False)
        it = it[rng.permutation(m)]  # random tie-breaking
        ic = ic[rng.permutation(m)]
        tr.append(it[np.argsort(b[it], kind="stable")])
        co.append(ic[np.argsort(b[ic], kind="stable")])
    if not tr:
        return np.empty(0, int), np.empty(0, int)
    return np.concatenate(tr), np.concatenate(co)


def _whitener(Xk: np.ndarray, tk: np.ndarray) -> np.ndarray:
    """Matrix W with (x-z)' W W' (x-z) = Mahalanobis distance, pooled within-arm covariance."""
    parts = [Xk[tk == a] - Xk[tk == a].mean(axis=0) for a in (0, 1) if (tk == a).sum() > 0]
    R = np.vstack(parts)
    dof = max(R.shape[0] - len(parts), 1)
    S = R.T @ R / dof
    vals, vecs = np.linalg.eigh(S)
    keep = vals > 1e-10 * max(vals.max(), 1e-300)
    return vecs[:, keep] / np.sqrt(vals[keep])


def _pairs_by_covariates(X: np.ndarray, t: np.ndarray, codes: np.ndarray, rng: np.random.Generator):
    """Greedy 1:1 nearest-neighbour Mahalanobis matching without replacement, within cluster.
    The smaller arm is focal (MatchIt ATT/ATC choice); focal units are processed in random
    order; distance ties broken at random."""
    tr, co = [], []
    for k in np.unique(codes):
        idx = np.flatnonzero(codes == k)
        tk = t[idx]
        if tk.sum() == 0 or tk.sum() == idx.size:
            continue
        W = _whitener(X[idx], tk)
        Z = X[idx] @ W if W.shape[1] else np.zeros((idx.size, 1))
        it, ic = idx[tk == 1], idx[tk == 0]
        zt, zc = Z[tk == 1], Z[tk == 0]
        treated_focal = it.size <= ic.size
        f_idx, o_idx, zf, zo = (it, ic, zt, zc) if treated_focal else (ic, it, zc, zt)
        perm_o = rng.permutation(o_idx.size)
        o_idx, zo = o_idx[perm_o], zo[perm_o]
        D = cdist(zf, zo, "sqeuclidean")
        avail = np.ones(o_idx.size, bool)
        fo, oo = [], []
        for i in rng.permutation(f_idx.size):
            d = np.where(avail, D[i], np.inf)
            j = int(np.argmin(d))
            avail[j] = False
            fo.append(f_idx[i])
            oo.append(o_idx[j])
        if treated_focal:
            tr += fo
            co += oo
        else:
            tr += oo
            co += fo
    return np.asarray(tr, int), np.asarray(co, int)


@dataclass
class _PairData:
    benefit: np.ndarray
    g: np.ndarray
    treat: np.ndarray
    codes: np.ndarray
    X: np.ndarray | None
    g0_pred: np.ndarray | None
    g1_pred: np.ndarray | None

    def take(self, idx: np.ndarray, codes: np.ndarray) -> "_PairData":
        sel = lambda a: None if a is None else a[idx]  # noqa: E731
        return _PairData(self.benefit[idx], self.g[idx], self.treat[idx], codes, sel(self.X),
                         sel(self.g0_pred), sel(self.g1_pred))


def _make_pairs(d: _PairData, match: str, pair_prediction: str, rng: np.random.Generator):
    if match == "benefit":
        tr, co = _pairs_by_benefit(d.benefit, d.treat, d.codes, rng)
    else:
        tr, co = _pairs_by_covariates(d.X, d.treat, d.codes, rng)
    if pair_prediction == "mean":
        pred = (d.benefit[tr] + d.benefit[co]) / 2.0
    else:
        pred = d.g1_pred[tr] - d.g0_pred[co]
    obs = d.g[tr] - d.g[co]
    return tr, co, pred, obs, d.codes[tr]


def _setup_pairs(benefit, y, treat, outcome_type, higher_is_better, cluster, match, X, y0_pred,
                 y1_pred, pair_prediction):
    p = prepare(benefit, y, treat, cluster, outcome_type, higher_is_better)
    if match not in MATCH_METHODS:
        raise LbpError(f"match must be one of {MATCH_METHODS}, got {match!r}")
    if pair_prediction is None:
        pair_prediction = "cross" if (y0_pred is not None and y1_pred is not None) else "mean"
    if pair_prediction not in PAIR_PREDICTIONS:
        raise LbpError(f"pair_prediction must be one of {PAIR_PREDICTIONS}, got {pair_prediction!r}")
    Xa = None
    if match == "covariates":
        if X is None:
            raise LbpError("match='covariates' needs X (participants x covariates)")
        Xa = as_2d(X, "X", p.n)
    g0 = g1 = None
    if pair_prediction == "cross":
        if y0_pred is None or y1_pred is None:
            raise LbpError("pair_prediction='cross' needs y0_pred and y1_pred")
        g0 = orient(as_1d(y0_pred, "y0_pred", p.n), higher_is_better)
        g1 = orient(as_1d(y1_pred, "y1_pred", p.n), higher_is_better)
    return p, _PairData(snap_ties(p.benefit), p.g, p.treat, p.codes, Xa, g0, g1), pair_prediction


def snap_ties(b: np.ndarray, rel: float = 1e-9) -> np.ndarray:
    """Predicted benefits equal up to floating-point noise made exactly equal.

    A model with one common effect computes it as a difference of two outcome predictions, which
    differ from the constant in the last bits by an amount that follows the prognosis; ranked as
    they are, that noise (correlated with the outcome) looks like discrimination. Values within
    ``rel`` x max(1, max |b|) of the previous distinct value (in sorted order) are tied, so a
    constant predictor scores exactly 0.5, ties counting 1/2 as in the published definition."""
    b = np.asarray(b, float)
    if b.size < 2:
        return b
    order = np.argsort(b, kind="mergesort")
    sb = b[order]
    tol = rel * max(1.0, float(np.nanmax(np.abs(sb))) if np.isfinite(sb).any() else 1.0)
    new_group = np.concatenate([[True], np.diff(sb) > tol])
    heads = sb[new_group][np.cumsum(new_group) - 1]
    out = np.empty_like(b)
    out[order] = heads
    return out


@dataclass(frozen=True)
class MatchedPairs(MetricResult):
    """Matched treated/comparator pairs (positions into the input arrays)."""

    treated_index: np.ndarray
    control_index: np.ndarray
    cluster: np.ndarray
    predicted_benefit: np.ndarray
    observed_benefit: np.ndarray
    match: str
    pair_prediction: str

    @property
    def n_pairs(self) -> int:
        return int(self.treated_index.shape[0])


def match_pairs(
    benefit: Any, y: Any, treat: Any, *, outcome_type: str, higher_is_better: bool,
    cluster: Any = None, match: str = "benefit", X: Any = None, y0_pred: Any = None,
    y1_pred: Any = None, pair_prediction: str | None = None, random_state: Any = 0,
) -> MatchedPairs:
    """Treated-comparator pairs, matched within cluster, with predicted and observed pair benefit.

    ``match='benefit'``: in each cluster the larger arm is randomly subsampled to the size of
    the smaller; each arm is sorted by predicted benefit and the k-th ranked treated patient is
    paired with the k-th ranked comparator (van Klaveren 2018; predieval/iteval).
    ``match='covariates'``: greedy 1:1 nearest-neighbour Mahalanobis matching on ``X`` without
    replacement (pooled within-arm covariance within the cluster; smaller arm focal), as
    HTEPredictionMetrics via MatchIt.
    Pair predicted benefit: ``'mean'`` = average of the two patients' predicted benefits;
    ``'cross'`` = g1_pred(treated member) - g0_pred(comparator member) (HTEPredictionMetrics),
    where g is the outcome oriented so that larger = better. Observed pair benefit =
    g(treated member) - g(comparator member).
    """
    p, d, pp = _setup_pairs(benefit, y, treat, outcome_type, higher_is_better, cluster, match, X,
                            y0_pred, y1_pred, pair_prediction)
    tr, co, pred, obs, cl = _make_pairs(d, match, pp, rng_of(random_state))
    labels = np.asarray(p.labels, dtype=object)[cl] if cluster is not None else np.zeros(tr.size, int)
    return MatchedPairs(tr, co, labels, pred, obs, match, pp)


# ============================================================================ c-for-benefit
@dataclass(frozen=True)
class CForBenefitResult(MetricResult):
    c_for_benefit: float
    ci_low: float
    ci_high: float
    n_pairs: int
    n_comparable: float
    n_clusters: int
    match: str
    pair_prediction: str
    outcome_type: str
    within_cluster_comparisons: bool
    n_repeats: int
    n_boot: int
    n_boot_failed: int
    ci_level: float


def c_for_benefit(
    benefit: Any, y: Any, treat: Any, *, outcome_type: str, higher_is_better: bool,
    cluster: Any = None, match: str = "benefit", X: Any = None, y0_pred: Any = None,
    y1_pred: Any = None, pair_prediction: str | None = None, within_cluster_comparisons: bool = True,
    n_repeats: int = 10, n_boot: int = 200, ci_level: float = 0.95, min_pairs: int = 10,
    bootstrap: str = "two_stage", random_state: Any = 0,
) -> CForBenefitResult:
    """c-for-benefit (van Klaveren et al., J Clin Epidemiol 2018;94:59-68).

    Estimand: the probability that, of two matched treated-comparator pairs with unequal
    observed benefit, the pair with the larger observed benefit also has the larger predicted
    benefit. Pairs are formed within cluster (see :func:`match_pairs`). Observed pair benefit is
    g(treated) - g(comparator) with g the outcome oriented so that larger = better: in {-1, 0, 1}
    for a binary outcome (as published), continuous for a continuous outcome (extension).

    Concordance is Harrell's C over pairs of pairs: pairs of pairs tied in observed benefit are
    not comparable (excluded, as Harrell's C excludes tied outcomes); ties in predicted pair
    benefit score 1/2 (``Hmisc::rcorr.cens``). With ``within_cluster_comparisons`` (default)
    only pairs from the same cluster are compared (a stratified C), so between-trial differences
    in the average effect do not count as discrimination.

    The random subsampling/tie-breaking of matching is averaged over ``n_repeats`` matchings.
    CI: percentile cluster bootstrap (participants within arm if one cluster), re-matching in
    every replicate. Not a proper scoring rule (Xia et al. 2023); report alongside calibration.
    """
    p, d, pp = _setup_pairs(benefit, y, treat, outcome_type, higher_is_better, cluster, match, X,
                            y0_pred, y1_pred, pair_prediction)
    rng = rng_of(random_state)
    n_repeats = max(int(n_repeats), 1)

    def one(dd: _PairData, reps: int, strict: bool) -> tuple[float, int, float]:
        cs, comps, npairs = [], [], 0
        for _ in range(reps):
            tr, _co, pred, obs, cl = _make_pairs(dd, match, pp, rng)
            npairs = tr.size
            if npairs < min_pairs:
                raise LbpError(f"too few matched pairs for c-for-benefit: {npairs} < min_pairs={min_pairs}")
            num, den = stratified_concordance(pred, obs, cl if within_cluster_comparisons else None)
            if den == 0:
                if strict:
                    raise LbpError("no two matched pairs differ in observed benefit: c-for-benefit undefined")
                continue
            cs.append(num / den)
            comps.append(den)
        if not cs:
            raise LbpError("no two matched pairs differ in observed benefit: c-for-benefit undefined")
        return float(np.mean(cs)), npairs, float(np.mean(comps))

    est, npairs, ncomp = one(d, n_repeats, strict=False)
    lo, hi, failed, _ = run_bootstrap(lambda idx, cl: one(d.take(idx, cl), 1, True)[0],
                                      p.codes, p.treat, n_boot, rng, ci_level, scheme=bootstrap)
    return CForBenefitResult(est, fnum(lo), fnum(hi), npairs, ncomp, p.n_clusters, match, pp,
                             outcome_type, within_cluster_comparisons, n_repeats, n_boot, failed, ci_level)


# ============================================================================ grouped calibration
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
    proportions (binary) of the oriented outcome, exercise minus comparator, stratified by
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

    Binary: with Z = +1 (exercise) / -1 (comparator), d = logit(p1) - logit(p0) and
    offset = logit(p0) for exercise, logit(p1) for comparator participants, fit
    ``logit P(y=1) = offset [+ cluster intercepts] + a*Z + s*Z*d`` (binomial ML). A correct
    model for the treatment effect gives a = 0, s = 1 (log-odds-ratio scale). Continuous
    (extension, not in iteval): same with identity link on the oriented outcome:
    ``g - g_pred(other arm) = [cluster intercepts] + a*Z + s*Z*(g1_pred - g0_pred)``.
    The reported ``intercept`` is in the benefit direction (sign-flipped for a binary outcome
    where higher is worse); ``slope`` is invariant. ``cluster_intercepts`` (default True; iteval
    has none) makes a and s insensitive to outcome miscalibration-in-the-large per trial.
    SE: binary - quasi-binomial (one cluster) or CR1 (>= 2 clusters); continuous - HC3 or CR1.
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


# ============================================================================ E-for-benefit
@dataclass(frozen=True)
class EForBenefitResult(MetricResult):
    e_avg: float
    e_avg_ci_low: float
    e_avg_ci_high: float
    e50: float
    e50_ci_low: float
    e50_ci_high: float
    e90: float
    e90_ci_low: float
    e90_ci_high: float
    n_pairs: int
    n_clusters: int
    match: str
    pair_prediction: str
    span: float
    degree: int
    n_repeats: int
    n_boot: int
    n_boot_failed: int
    ci_level: float


def e_for_benefit(
    benefit: Any, y: Any, treat: Any, *, outcome_type: str, higher_is_better: bool,
    cluster: Any = None, match: str = "covariates", X: Any = None, y0_pred: Any = None,
    y1_pred: Any = None, pair_prediction: str | None = None, span: float = 0.75, degree: int = 2,
    n_repeats: int = 5, n_boot: int = 200, ci_level: float = 0.95, min_pairs: int = 10,
    bootstrap: str = "two_stage", random_state: Any = 0,
) -> EForBenefitResult:
    """E-for-benefit (Maas et al., BMC Med Res Methodol 2023; HTEPredictionMetrics).

    On matched pairs (:func:`match_pairs`; default covariate matching, pair prediction
    ``'cross'`` when y0/y1 predictions are given, else ``'mean'``) the observed pair benefit is
    smoothed on the predicted pair benefit with loess (span 0.75, degree 2, R defaults, no
    robustness iterations). With s_p the smoothed value at pair p's prediction d_p:
    Eavg = mean |s_p - d_p|, E50 = median, E90 = 90th percentile (unweighted, as the
    HTEPredictionMetrics code). Ideal 0. Averaged over ``n_repeats`` matchings; percentile
    cluster-bootstrap CIs with re-matching. The smoother is pooled over clusters (pairs are
    still formed within cluster).
    """
    p, d, pp = _setup_pairs(benefit, y, treat, outcome_type, higher_is_better, cluster, match, X,
                            y0_pred, y1_pred, pair_prediction)
    rng = rng_of(random_state)
    n_repeats = max(int(n_repeats), 1)

    def one(dd: _PairData, reps: int) -> np.ndarray:
        vals, npairs = [], 0
        for _ in range(reps):
            _tr, _co, pred, obs, _cl = _make_pairs(dd, match, pp, rng)
            npairs = pred.size
            if npairs < max(min_pairs, degree + 2):
                raise LbpError(f"too few matched pairs for E-for-benefit: {npairs} < min_pairs={min_pairs}")
            sm = loess(pred, obs, span=span, degree=degree)
            err = np.abs(sm - pred)
            vals.append([err.mean(), np.median(err), np.quantile(err, 0.9)])
        return np.append(np.mean(vals, axis=0), npairs)

    est = one(d, n_repeats)
    lo, hi, failed, _ = run_bootstrap(lambda idx, cl: one(d.take(idx, cl), 1)[:3], p.codes, p.treat,
                                      n_boot, rng, ci_level, scheme=bootstrap)
    lo = np.full(3, np.nan) if np.ndim(lo) == 0 else lo
    hi = np.full(3, np.nan) if np.ndim(hi) == 0 else hi
    return EForBenefitResult(float(est[0]), float(lo[0]), float(hi[0]), float(est[1]), float(lo[1]),
                             float(hi[1]), float(est[2]), float(lo[2]), float(hi[2]), int(est[3]),
                             p.n_clusters, match, pp, span, degree, n_repeats, n_boot, failed, ci_level)


# ============================================================================ RATE / TOC / Qini
def dr_scores(g: np.ndarray, t: np.ndarray, codes: np.ndarray, e: np.ndarray,
              g0_pred: np.ndarray | None = None, g1_pred: np.ndarray | None = None) -> np.ndarray:
    """Doubly robust (AIPW) scores of the oriented effect with known propensity e:
    G = m1 - m0 + t(g - m1)/e - (1-t)(g - m0)/(1-e). Outcome models m0, m1 = the given
    predictions (oriented), else within-cluster arm means (unbiased for any m with known e)."""
    if g0_pred is None or g1_pred is None:
        m0 = np.zeros_like(g)
        m1 = np.zeros_like(g)
        for k in np.unique(codes):
            m = codes == k
            for arm, mm in ((0, m0), (1, m1)):
                sel = m & (t == arm)
                mm[m] = g[sel].mean() if sel.any() else g[m].mean()
    else:
        m0, m1 = g0_pred, g1_pred
    return m1 - m0 + t * (g - m1) / e - (1 - t) * (g - m0) / (1 - e)


def _toc_unit(priority: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """TOC at q_j = j/n, j=1..n, units sorted by decreasing priority; tied priorities share the
    mean score of their block (so the curve does not depend on arbitrary tie order)."""
    priority = snap_ties(priority)  # equal up to floating-point noise = tied (see snap_ties)
    order = np.argsort(-priority, kind="stable")
    pr, gm = priority[order], gamma[order]
    _, start, counts = np.unique(-pr, return_index=True, return_counts=True)
    if counts.max() > 1:
        sums = np.add.reduceat(gm, start)
        gm = np.repeat(sums / counts, counts)
    n = gm.size
    return np.cumsum(gm) / np.arange(1, n + 1) - gm.mean()


def _rate_stats(priority, gamma, q_grid):
    toc = _toc_unit(priority, gamma)
    n = toc.size
    q = np.arange(1, n + 1) / n
    autoc = toc.mean()
    qini = (q * toc).mean()
    j = np.clip(np.ceil(q_grid * n).astype(int), 1, n) - 1
    return np.concatenate([[autoc, qini, gamma.mean()], toc[j]])


@dataclass(frozen=True)
class RateResult(MetricResult):
    autoc: float
    autoc_ci_low: float
    autoc_ci_high: float
    qini: float
    qini_ci_low: float
    qini_ci_high: float
    ate: float
    ate_ci_low: float
    ate_ci_high: float
    q: np.ndarray
    toc: np.ndarray
    toc_ci_low: np.ndarray
    toc_ci_high: np.ndarray
    n: int
    n_clusters: int
    scores: str
    n_boot: int
    n_boot_failed: int
    ci_level: float


def rank_average_treatment_effect(
    priority: Any, y: Any, treat: Any, *, outcome_type: str,
    higher_is_better: bool, cluster: Any = None, propensity: Any = None,
    y0_pred: Any = None, y1_pred: Any = None, q_grid: Any = None, n_boot: int = 200,
    ci_level: float = 0.95, bootstrap: str = "two_stage", random_state: Any = 0,
) -> RateResult:
    """Targeting operator characteristic (TOC), AUTOC and Qini coefficient (Yadlowsky et al.,
    "Evaluating treatment prioritization rules via rank-weighted average treatment effects";
    grf ``rank_average_treatment_effect``).

    Units are sorted by decreasing ``priority`` (normally the predicted benefit).
    TOC(q) = E[effect | priority in top q] - E[effect], estimated with doubly robust scores
    (:func:`dr_scores`, known propensity: given or within-cluster share). AUTOC = mean over
    q = j/n of TOC(q) (integral with weight 1); Qini = mean of q*TOC(q) (weight q). Both are 0
    for a ranking unrelated to the effect and > 0 when high priority means larger benefit.
    Effects use the oriented outcome (benefit direction). The ranking is pooled over clusters
    (one rule for everybody) while scores use cluster-specific arm means/propensities. CI:
    percentile cluster bootstrap. Valid only for a priority fit on independent data.
    """
    p = prepare(priority, y, treat, cluster, outcome_type, higher_is_better)
    e = propensity_array(propensity, p.treat, p.codes)
    g0 = g1 = None
    if (y0_pred is None) != (y1_pred is None):
        raise LbpError("give both y0_pred and y1_pred, or neither")
    if y0_pred is not None:
        g0 = orient(as_1d(y0_pred, "y0_pred", p.n), higher_is_better)
        g1 = orient(as_1d(y1_pred, "y1_pred", p.n), higher_is_better)
    qg = np.round(np.arange(1, 21) / 20, 10) if q_grid is None else as_1d(q_grid, "q_grid")
    if ((qg <= 0) | (qg > 1)).any():
        raise LbpError("q_grid values must be in (0, 1]")
    rng = rng_of(random_state)
    t = p.treat.astype(float)

    def stat(idx, codes):
        tt = t[idx]
        ee = propensity_array(None, p.treat[idx], codes) if propensity is None else e[idx]
        if ((ee <= 0) | (ee >= 1)).any():  # a resampled cluster with one arm: drop it
            keep = (ee > 0) & (ee < 1)
            if not keep.any():
                raise LbpError("no cluster with both arms")
            idx, codes, tt, ee = idx[keep], codes[keep], tt[keep], ee[keep]
        gam = dr_scores(p.g[idx], tt, codes, ee, None if g0 is None else g0[idx],
                        None if g1 is None else g1[idx])
        return _rate_stats(p.benefit[idx], gam, qg)

    est = stat(np.arange(p.n), p.codes)
    lo, hi, failed, _ = run_bootstrap(stat, p.codes, p.treat, n_boot, rng, ci_level, scheme=bootstrap)
    m = est.size
    lo = np.full(m, np.nan) if np.ndim(lo) == 0 else lo
    hi = np.full(m, np.nan) if np.ndim(hi) == 0 else hi
    return RateResult(float(est[0]), float(lo[0]), float(hi[0]), float(est[1]), float(lo[1]),
                      float(hi[1]), float(est[2]), float(lo[2]), float(hi[2]), qg, est[3:], lo[3:],
                      hi[3:], p.n, p.n_clusters, "dr_model" if g0 is not None else "dr_arm_means",
                      n_boot, failed, ci_level)
