"""Decision usefulness of benefit predictions: net benefit / decision curve for treatment selection.

Policy: treat with the intervention if predicted benefit >= c, where the threshold c is the smallest
worthwhile benefit (on the benefit scale: outcome points for continuous outcomes, risk
difference for binary). Treating costs c (burden, time, cost expressed in benefit units), so

    NB_model(c) = E[ 1{b(X) >= c} * (Y(1) - Y(0) - c) ]   (per patient, oriented outcome)
    NB_all(c)   = E[ Y(1) - Y(0) ] - c,                   NB_none(c) = 0.

NB_model = share selected x (mean effect among the selected - c): "the observed benefit among
those the model would treat, weighted by their share", net of the threshold. Estimated from
randomised data with doubly robust (AIPW) scores using the known allocation ratio
(:func:`training.metrics.rate.dr_scores`), which equals a difference in means within the
selected subgroup up to chance imbalance and is unbiased because randomisation is known.
This follows the treatment-selection decision analysis of Vickers, Kattan & Sargent (Trials
2007;8:14, "Method for evaluating prediction models that predict treatment benefit") and the
policy-value decomposition of Janes, Brown, Huang & Pepe (Int J Biostat 2014); it is the
benefit-scale analogue of Vickers & Elkin's decision curve (Med Decis Making 2006).
Units: outcome points per patient (continuous), extra good outcomes per patient (binary;
multiply by 100 for "per 100 patients").
"""
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
from training.metrics.rate import dr_scores


@dataclass(frozen=True)
class DecisionCurveResult(MetricResult):
    thresholds: np.ndarray
    net_benefit_model: np.ndarray
    net_benefit_model_ci_low: np.ndarray
    net_benefit_model_ci_high: np.ndarray
    net_benefit_all: np.ndarray
    net_benefit_all_ci_low: np.ndarray
    net_benefit_all_ci_high: np.ndarray
    difference_vs_all: np.ndarray
    difference_vs_all_ci_low: np.ndarray
    difference_vs_all_ci_high: np.ndarray
    treated_share: np.ndarray
    n: int
    n_clusters: int
    outcome_type: str
    n_boot: int
    n_boot_failed: int
    ci_level: float

    def to_frame(self):
        import pandas as pd

        cols = ["thresholds", "net_benefit_model", "net_benefit_model_ci_low",
                "net_benefit_model_ci_high", "net_benefit_all", "net_benefit_all_ci_low",
                "net_benefit_all_ci_high", "difference_vs_all", "difference_vs_all_ci_low",
                "difference_vs_all_ci_high", "treated_share"]
        return pd.DataFrame({c: getattr(self, c) for c in cols})


def net_benefit(
    benefit: Any, y: Any, treat: Any, *, outcome_type: str,
    higher_is_better: bool, cluster: Any = None, propensity: Any = None,
    y0_pred: Any = None, y1_pred: Any = None, thresholds: Any = None, n_boot: int = 200,
    ci_level: float = 0.95, bootstrap: str = "two_stage", random_state: Any = 0,
    threshold_scale: Any = None,
) -> DecisionCurveResult:
    """Net benefit of "the intervention if predicted benefit >= threshold" vs treat-all (and treat-none
    = 0) across thresholds of the smallest worthwhile benefit; see the module docstring for the
    estimand. Default thresholds: 41 points from min(0, 1st percentile) to the 99th percentile
    of predicted benefit. CIs: percentile cluster bootstrap (pointwise).
    ``threshold_scale`` (optional, per patient, >= 0): patient i's threshold is c * s_i, e.g. a
    relative smallest worthwhile effect "a fraction f of the patient's baseline" is c = f with
    s = baseline; then NB_model = mean 1{b_i >= c s_i}(Gamma_i - c s_i), NB_all = mean(Gamma_i - c s_i).
    """
    p = prepare(benefit, y, treat, cluster, outcome_type, higher_is_better)
    e = propensity_array(propensity, p.treat, p.codes)
    if (y0_pred is None) != (y1_pred is None):
        raise LbpError("give both y0_pred and y1_pred, or neither")
    g0 = g1 = None
    if y0_pred is not None:
        g0 = orient(as_1d(y0_pred, "y0_pred", p.n), higher_is_better)
        g1 = orient(as_1d(y1_pred, "y1_pred", p.n), higher_is_better)
    if thresholds is None:
        lo_q, hi_q = np.quantile(p.benefit, [0.01, 0.99])
        thr = np.linspace(min(0.0, lo_q), max(hi_q, 0.0), 41)
    else:
        thr = np.sort(as_1d(thresholds, "thresholds"))
    t = p.treat.astype(float)
    sc = np.ones(p.n) if threshold_scale is None else as_1d(threshold_scale, "threshold_scale", p.n)
    if not (sc >= 0).all():
        raise LbpError("threshold_scale must be >= 0 for every patient")

    def stat(idx, codes):
        ee = propensity_array(None, p.treat[idx], codes) if propensity is None else e[idx]
        keep = (ee > 0) & (ee < 1)
        if not keep.any():
            raise LbpError("no cluster with both arms")
        idx, codes, ee = idx[keep], codes[keep], ee[keep]
        gam = dr_scores(p.g[idx], t[idx], codes, ee, None if g0 is None else g0[idx],
                        None if g1 is None else g1[idx])
        cut = thr[:, None] * sc[idx][None, :]
        sel = p.benefit[idx][None, :] >= cut
        nb_model = np.mean(sel * (gam[None, :] - cut), axis=1)
        nb_all = gam.mean() - cut.mean(axis=1)
        return np.concatenate([nb_model, nb_all, nb_model - nb_all, sel.mean(axis=1)])

    est = stat(np.arange(p.n), p.codes)
    rng = rng_of(random_state)
    lo, hi, failed, _ = run_bootstrap(stat, p.codes, p.treat, n_boot, rng, ci_level, scheme=bootstrap)
    m = thr.size
    lo = np.full(4 * m, np.nan) if np.ndim(lo) == 0 else lo
    hi = np.full(4 * m, np.nan) if np.ndim(hi) == 0 else hi
    s = [slice(i * m, (i + 1) * m) for i in range(4)]
    return DecisionCurveResult(thr, est[s[0]], lo[s[0]], hi[s[0]], est[s[1]], lo[s[1]], hi[s[1]],
                               est[s[2]], lo[s[2]], hi[s[2]], est[s[3]], p.n, p.n_clusters,
                               outcome_type, n_boot, failed, ci_level)
