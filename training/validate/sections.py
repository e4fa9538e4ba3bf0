"""Outcome, benefit and decision sections of a validation report, computed with the metric
library shared with IECV (``training.metrics``; docs/metrics.md). Each metric that cannot be
estimated on the new trial (too few pairs, one outcome class ...) is reported as
``{"status": "not_estimable", "reason": ...}`` instead of stopping the report.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from predict.errors import LbpError
from training import metrics as M
from training.validate.data import TaskData
from training.verdicts import (average_benefit_check, constant_prediction_verdict, heterogeneity_verdict,
                               spread_warning)


def swe_rule(td: TaskData) -> tuple[str, float, str] | None:
    """The smallest worthwhile effect of the task's outcome: ('relative', fraction of the patient's
    baseline, rule) or ('absolute', outcome units / risk difference, rule); None when there is no
    usable rule (none configured, a relative rule without a baseline, or a binary outcome without
    an absolute one)."""
    swe = td.smallest_worthwhile or {}
    if "absolute" in swe:
        unit = "points" if td.outcome_type == "continuous" else "risk difference"
        return "absolute", float(swe["absolute"]), f"{swe['absolute']:g} {unit} (study config)"
    if td.outcome_type != "continuous" or not np.isfinite(td.baseline).any():
        return None
    if "relative" in swe:
        return "relative", float(swe["relative"]), f"{swe['relative']:.0%} of the patient's baseline (study config)"
    return None  # none configured (nor in the model): no rule is invented
FEW = 100  # fewer participants in a comparison: warn that the intervals are wide


def attempt(fn: Callable):
    """Run one metric; (result, None) or (None, reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(), None
    except (LbpError, ValueError, np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError) as exc:
        return None, f"{type(exc).__name__}: {exc}" if not isinstance(exc, LbpError) else str(exc)


def _ne(reason: str) -> dict:
    return {"status": "not_estimable", "reason": reason}


def outcome_section(td: TaskData, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Calibration-in-the-large, slope, R^2 or C-statistic (+ Brier) and a smoothed calibration
    curve of the prediction for the arm each participant received."""
    ok = np.isfinite(td.own_pred) & np.isfinite(td.y)
    y, pred, cl = td.y[ok], td.own_pred[ok], td.trial[ok]
    if td.outcome_type == "binary":
        pred = np.clip(pred, 1e-6, 1 - 1e-6)
    sec: dict = {"n": int(ok.sum()), "outcome_type": td.outcome_type, "warnings": []}
    objs: dict = {}
    if td.outcome_type == "continuous" and pred.size:
        # found on medicaldata::strep_tb: a linear model of an outcome piled up at the scale's floor
        # predicted -27 on the 0-100 scale for patients in rare covariate levels
        out = (pred < 0) | (pred > 100)
        sec["outside_scale"] = int(out.sum())
        if out.any():
            sec["warnings"].append(
                f"{int(out.sum())} of {pred.size} participants' predicted outcome lies outside the 0-100 scale "
                f"(from {pred.min():.1f} to {pred.max():.1f}): the linear model extrapolates past the scale's floor "
                f"or ceiling, so those predictions, and the benefits built on them, are less reliable")
    r, why = attempt(lambda: M.outcome_performance(y, pred, outcome_type=td.outcome_type, cluster=cl,
                                                   n_boot=n_boot, random_state=seed))
    sec["performance"] = r.to_dict() if r is not None else _ne(why)
    objs["performance"] = r
    r, why = attempt(lambda: M.calibration_curve(y, pred, outcome_type=td.outcome_type, cluster=cl,
                                                 n_boot=n_boot, random_state=seed))
    sec["calibration_curve"] = r.to_dict() if r is not None else _ne(why)
    objs["curve"], objs["pred"] = r, pred
    return sec, objs


def benefit_section(td: TaskData, comp: str, active: str, n_boot: int, seed: int) -> tuple[dict, dict]:
    """c-for-benefit, calibration for benefit (regression and groups), E-for-benefit, RATE
    (AUTOC, Qini, TOC) and the decision curve for active-vs-``comp`` participants."""
    rows = ((td.cls == active) | (td.cls == comp)) & np.isfinite(td.benefit[comp]) & np.isfinite(td.y)
    n1, n0 = int((rows & (td.treat == 1)).sum()), int((rows & (td.treat == 0)).sum())
    sec: dict = {"comparator": comp, "n": int(rows.sum()), "n_active": n1, "n_comparator": n0, "warnings": []}
    if n1 == 0 or n0 == 0:
        sec["status"] = "refused"
        sec["reason"] = (f"benefit metrics need randomised {active} and {comp} participants; the new trial has "
                         f"{n1} {active} and {n0} {comp} participants with an outcome")
        return sec, {}
    sec["status"] = "ok"
    if rows.sum() < FEW:
        sec["warnings"].append(f"only {int(rows.sum())} participants ({n1} {active}, {n0} {comp}): benefit metrics are "
                               f"imprecise and their intervals wide; at least a few hundred are advisable")
    b, y, t, cl = td.benefit[comp][rows], td.y[rows], td.treat[rows], td.trial[rows]
    prog = td.pred_comp[comp][rows]
    common = dict(outcome_type=td.outcome_type, higher_is_better=td.higher_is_better, cluster=cl)
    objs: dict = {"rows": rows}
    sec["predicted_benefit"] = {"mean": float(b.mean()), "sd": float(b.std(ddof=1)) if b.size > 1 else None,
                                "min": float(b.min()), "max": float(b.max())}
    r, why = attempt(lambda: M.c_for_benefit(b, y, t, match="benefit", n_repeats=5, n_boot=n_boot,
                                             random_state=seed, **common))
    sec["c_for_benefit"] = r.to_dict() if r is not None else _ne(why)
    cal, why = attempt(lambda: M.calibration_for_benefit(b, y, t, prognosis=prog, **common))
    adjusted = cal is not None
    if cal is None:  # e.g. a risk model: benefit is affine in the prognosis, so adjust for it is impossible
        cal, why = attempt(lambda: M.calibration_for_benefit(b, y, t, **common))
    sec["calibration_for_benefit"] = cal.to_dict() if cal is not None else _ne(why)
    if cal is not None:
        sec["calibration_for_benefit"]["adjusted_for_prognosis"] = adjusted
    objs["calibration"] = cal
    n_groups = int(max(2, min(5, rows.sum() // 40)))
    g, why = attempt(lambda: M.calibration_for_benefit_groups(b, y, t, n_groups=n_groups, **common))
    sec["calibration_for_benefit_groups"] = g.to_dict() if g is not None else _ne(why)
    objs["groups"] = g
    pairs, _ = attempt(lambda: M.match_pairs(b, y, t, match="benefit", random_state=seed, **common))
    objs["pairs"] = pairs
    r, why = attempt(lambda: M.e_for_benefit(b, y, t, match="benefit", n_repeats=3, n_boot=n_boot,
                                             random_state=seed, **common))
    sec["e_for_benefit"] = r.to_dict() if r is not None else _ne(why)
    rate, why = attempt(lambda: M.rank_average_treatment_effect(b, y, t, n_boot=n_boot, random_state=seed, **common))
    sec["rank_average_treatment_effect"] = rate.to_dict() if rate is not None else _ne(why)
    objs["rate"] = rate
    dec, objs["decision"] = decision_section(td, rows, b, y, t, cl, n_boot, seed)
    sec["net_benefit"] = dec
    units = "points" if td.outcome_type == "continuous" else "risk difference"
    c = sec["c_for_benefit"]
    triple = lambda d, k, lo, hi: (d.get(k), d.get(lo), d.get(hi)) if k in d else None  # noqa: E731
    slope = triple(sec["calibration_for_benefit"], "slope", "slope_ci_low", "slope_ci_high")
    rt = sec["rank_average_treatment_effect"]
    average = triple(rt, "ate", "ate_ci_low", "ate_ci_high")
    v = heterogeneity_verdict(triple(c, "c_for_benefit", "ci_low", "ci_high"), slope,
                              triple(rt, "autoc", "autoc_ci_low", "autoc_ci_high"), average,
                              f"{units}; positive: better with {active.replace('_', ' ')}")
    if np.ptp(b) <= 1e-12 * max(1.0, float(np.abs(b).max())):  # one benefit for all: nothing to rank
        v = constant_prediction_verdict(average, f"{units}; positive: better with {active.replace('_', ' ')}")
        for key, cis in (("c_for_benefit", ("ci_low", "ci_high")),
                         ("rank_average_treatment_effect", ("autoc_ci_low", "autoc_ci_high", "qini_ci_low", "qini_ci_high"))):
            sec[key] = {**sec[key], **{k: None for k in cis if k in sec[key]},
                        "note": "constant predicted benefit: interval not estimable (zero width because nothing varies)"}
    new_setting, pi = None, td.pi.get(comp)
    if pi is not None:  # the model's new-setting interval, averaged over the rows that have one
        lo, hi = pi[0][rows], pi[1][rows]
        has = np.isfinite(lo) & np.isfinite(hi)
        new_setting = (float(lo[has].mean()), float(hi[has].mean())) if has.any() else None
    off = average_benefit_check(sec["predicted_benefit"]["mean"], average, units, new_setting)
    if off is not None:  # the model's own average is not what these data show: said in the verdict and warned
        v = {**v, "sentence": v["sentence"] + " " + off["sentence"],
             "evidence": {**v["evidence"], "average_benefit": {k: off[k] for k in ("side", "predicted", "observed",
                                                                                  "within_pi") if k in off}}}
        sec["warnings"].append(off["sentence"])
    sec["verdict"] = v
    w = spread_warning(sec["predicted_benefit"]["sd"], slope, average, v["level"], units)
    if w:
        sec["warnings"].append(w)
    return sec, objs


def decision_section(td: TaskData, rows, b, y, t, cl, n_boot: int, seed: int) -> tuple[dict, object]:
    """Net benefit of "treat if predicted benefit >= smallest worthwhile benefit" vs treat-all and
    treat-none. A relative rule: thresholds are fractions of the patient's own baseline; an absolute
    one, or none: outcome points or risk differences (without a rule, no value is singled out)."""
    common = dict(outcome_type=td.outcome_type, higher_is_better=td.higher_is_better, cluster=cl)
    rule = swe_rule(td)
    if rule is not None and rule[0] == "relative":
        base = td.baseline[rows]
        if not np.isfinite(base).all():
            return _ne("baseline missing for some participants"), None
        thr = np.round(np.linspace(0.0, max(0.5, 2.5 * rule[1]), 21), 3)
        r, why = attempt(lambda: M.net_benefit(b, y, t, thresholds=thr, threshold_scale=base, n_boot=n_boot,
                                               random_state=seed, **common))
        scale, at = "fraction of the patient's baseline score (threshold = fraction x baseline, outcome points)", rule[1]
    else:
        top = 2.5 * rule[1] if rule is not None else (0.2 if td.outcome_type == "binary" else 2.5 * float(np.nanstd(b)))
        thr = np.unique(np.round(np.concatenate([np.linspace(0.0, top, 21), [rule[1]] if rule else []]), 6))
        r, why = attempt(lambda: M.net_benefit(b, y, t, thresholds=thr, n_boot=n_boot, random_state=seed, **common))
        scale = ("absolute difference in the probability of the outcome" if td.outcome_type == "binary"
                 else "outcome points (absolute)")
        at = rule[1] if rule is not None else None
    if r is None:
        return _ne(why), None
    d = r.to_dict()
    d["threshold_scale"] = scale
    d["units"] = "outcome points per patient" if td.outcome_type == "continuous" else "extra good outcomes per patient"
    if at is not None:
        k = int(np.argmin(np.abs(r.thresholds - at)))
        d["at_smallest_worthwhile"] = {
            "threshold": float(r.thresholds[k]), "rule": rule[2], "kind": rule[0],
            "net_benefit_model": float(r.net_benefit_model[k]),
            "ci": [float(r.net_benefit_model_ci_low[k]), float(r.net_benefit_model_ci_high[k])],
            "net_benefit_all": float(r.net_benefit_all[k]),
            "difference_vs_all": float(r.difference_vs_all[k]),
            "difference_vs_all_ci": [float(r.difference_vs_all_ci_low[k]), float(r.difference_vs_all_ci_high[k])],
            "treated_share": float(r.treated_share[k])}
    return d, r
