"""Validation by distance from the training support (the model's extrapolation check).

``extrapolation_section``: participants are split by the model's own extrapolation check
(:mod:`predict.support`: *within* the training support, i.e. no interval widening, vs *beyond*
it, widened; *rare* = beyond the training 99th percentile). Per band: the observed effect of the
randomised comparison (difference in mean outcomes, oriented so that positive favours the
active class, normal 95% CI), the mean predicted benefit, their difference (calibration in the
large) and whether the observed effect lies inside the mean 95% prediction interval. When the
data folder holds a simulator's ``truth/truth.csv`` (synthetic data only), also the coverage of
each participant's true benefit by their 95% prediction interval, per band: the check that the
widening keeps the intervals honest where the model extrapolates.
"""
from __future__ import annotations

import numpy as np
from statsmodels.stats.proportion import proportion_confint

Z = 1.959963984540054


def _effect(y: np.ndarray, t: np.ndarray, binary: bool) -> tuple[float, float]:
    """Observed effect (positive favours active) and its SE from a randomised comparison."""
    y1, y0 = y[t == 1], y[t == 0]
    if y1.size < 2 or y0.size < 2:
        return float("nan"), float("nan")
    d = (y1.mean() - y0.mean()) if binary else (y0.mean() - y1.mean())
    return float(d), float(np.sqrt(y1.var(ddof=1) / y1.size + y0.var(ddof=1) / y0.size))


def extrapolation_section(td, comp: str, active: str) -> dict:
    rows = ((td.cls == active) | (td.cls == comp)) & np.isfinite(td.benefit.get(comp, np.full(td.y.size, np.nan))) \
        & np.isfinite(td.y)
    sup = td.support or {}
    if "factor" not in sup or not rows.any():
        return {"status": "not available", "reason": "the model carries no training-support description"}
    # beyond the cut: distance ratio d / d_cut > 1 (a calibrated widening may leave factor 1 there: kappa 0)
    f = np.asarray(sup["ratio"] if "ratio" in sup else sup["factor"], float)
    rare = np.asarray(sup["rare"], bool)
    binary = td.outcome_type == "binary"
    pi = td.pi.get(comp)
    truth = td.truth.get(comp)
    out = {"status": "ok", "n": int(rows.sum()), "share_beyond_support": float(np.mean(f[rows] > 1)),
           "share_rare": float(np.mean(rare[rows])),
           "rule": "beyond = distance above the training 95th percentile (the model's extrapolation check, "
                   "where its interval is widened); rare = above the training 99th percentile (predict.support)",
           "bands": []}
    for name, m in (("all", np.ones_like(rows)), ("within_support", f <= 1), ("beyond_support", f > 1),
                    ("rare", rare)):
        mm = rows & m
        band = {"band": name, "n": int(mm.sum())}
        if mm.sum() >= 1:
            est, se = _effect(td.y[mm], td.treat[mm], binary)
            pred = float(np.mean(td.benefit[comp][mm]))
            band.update(predicted_mean=pred, observed=est,
                        observed_ci=[est - Z * se, est + Z * se] if np.isfinite(se) else None,
                        observed_minus_predicted=est - pred if np.isfinite(est) else None)
            if pi is not None:
                lo, hi = float(np.mean(pi[0][mm])), float(np.mean(pi[1][mm]))
                band["mean_prediction_interval"] = [lo, hi]
                band["observed_inside_mean_pi"] = bool(lo <= est <= hi) if np.isfinite(est) else None
            if pi is not None and truth is not None:
                ok = mm & np.isfinite(truth)
                if ok.any():
                    hit = (truth[ok] >= pi[0][ok]) & (truth[ok] <= pi[1][ok])
                    band["coverage_pi_true_benefit"] = float(np.mean(hit))
                    lo_c, hi_c = proportion_confint(int(hit.sum()), int(hit.size), alpha=0.05, method="wilson")
                    band["coverage_pi_true_benefit_ci"] = [float(lo_c), float(hi_c)]  # Wilson, participants independent
                    band["n_truth"] = int(hit.size)
                    band["truth_source"] = "truth/truth.csv (simulated data)"
        out["bands"].append(band)
    return out
