"""Metrics for predicted individual benefit (treatment-effect predictions) on randomised data:
the matching-based ones.

All functions follow the conventions in :mod:`training.metrics._base`: ``benefit`` > 0 means
the intervention is better; ``higher_is_better`` turns observed outcomes to the same sign
(oriented outcome ``g``); ``treat`` is 1 for the intervention; ``cluster`` (trial) is optional and,
when given, matching/grouping is within cluster and CIs come from a cluster bootstrap.

Metrics
-------
* :func:`c_for_benefit` - van Klaveren et al. (J Clin Epidemiol 2018;94:59-68), matching on
  predicted benefit or on covariates (Mahalanobis, as HTEPredictionMetrics), with a
  continuous-outcome extension.
* :func:`e_for_benefit` - Eavg/E50/E90 for benefit (Maas et al. 2023).

Calibration for benefit is in :mod:`training.metrics.benefit_calibration`; RATE / TOC / Qini in
:mod:`training.metrics.rate`.
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
    as_1d,
    as_2d,
    fnum,
    prepare,
    rng_of,
    run_bootstrap,
)
from training.metrics._stats import (
    loess,
    stratified_concordance,
    stratum_rows,
)

MATCH_METHODS = ("benefit", "covariates")
PAIR_PREDICTIONS = ("mean", "cross")


# ============================================================================ matching
def _pairs_by_benefit(b: np.ndarray, t: np.ndarray, codes: np.ndarray, rng: np.random.Generator):
    tr, co = [], []
    for rows in stratum_rows(codes):
        arm = t[rows]
        it, ic = rows[arm == 1], rows[arm == 0]
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
