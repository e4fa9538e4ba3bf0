"""Rank-weighted average treatment effect of a benefit ranking: TOC curve, AUTOC and Qini
coefficient (Yadlowsky et al.; grf ``rank_average_treatment_effect``) with doubly-robust scores and
known propensity (conventions of :mod:`training.metrics._base`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from predict.errors import LbpError
from training.orientation import orient
from training.metrics._base import (
    MetricResult,
    as_1d,
    prepare,
    propensity_array,
    rng_of,
    run_bootstrap,
)
from training.metrics.benefit import snap_ties


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
