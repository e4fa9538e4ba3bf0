"""The wording of every verdict on heterogeneity of benefit (``validate`` and ``train`` reports).

One place decides, from the interval estimates, whether the evidence supports individual
differences in benefit or says to use the average effect, and phrases it; the reports only
show the sentence. The rule (the c-for-benefit of van Klaveren et al. 2018 for ranking, the
calibration-for-benefit slope for the size of the predicted differences, RATE/AUTOC of Yadlowsky
et al. 2021 as a further test of ranking):

* **supported**: the c-for-benefit interval lies above 0.5 *and* the calibration-for-benefit
  slope interval above 0 (the model ranks who benefits more, and the differences it predicts
  show up in the outcomes);
* **inconclusive**: only one of the three (c-for-benefit above 0.5, slope above 0, AUTOC above 0)
  excludes "no heterogeneity";
* **not supported**: none does: use the average effect;
* **not assessable**: none of the metrics could be estimated.

Warnings: a case-mix membership C above 0.99 (the new data are almost perfectly separable from
the training data, so the model extrapolates), and a spread of predicted benefits the data
cannot support (calibration-for-benefit slope interval entirely below 1, or no evidence of
heterogeneity while the predicted benefits vary by more than the uncertainty of the average
effect itself).
"""
from __future__ import annotations

import math

SEPARABLE_C = 0.99


def _ok(t) -> bool:
    return t is not None and all(v is not None and math.isfinite(float(v)) for v in t)


def _side(t, null: float) -> str:
    """Where a (estimate, low, high) interval lies relative to the null value."""
    return "above" if t[1] > null else "below" if t[2] < null else "includes"


def _fmt(t, d=2) -> str:
    est, lo, hi = t
    return f"{est:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def heterogeneity_verdict(c_for_benefit=None, slope=None, autoc=None, average=None, units: str = "",
                          label: str = "") -> dict:
    """Verdict from (estimate, ci_low, ci_high) triples (None or non-finite: not estimated).

    ``average`` is the average effect (estimate, CI) quoted when the verdict is to use it;
    ``units`` its units; ``label`` names what is judged (e.g. "pain, short term vs usual care").
    Returns {"level", "sentence", "evidence": {metric: {...}}}.
    """
    ev = {}
    if _ok(c_for_benefit):
        ev["c_for_benefit"] = {"estimate": c_for_benefit[0], "ci": list(c_for_benefit[1:]), "null": 0.5,
                               "excludes_null": c_for_benefit[1] > 0.5}
    if _ok(slope):
        ev["calibration_for_benefit_slope"] = {"estimate": slope[0], "ci": list(slope[1:]), "null": 0.0,
                                               "excludes_null": slope[1] > 0}
    if _ok(autoc):
        ev["rate_autoc"] = {"estimate": autoc[0], "ci": list(autoc[1:]), "null": 0.0, "excludes_null": autoc[1] > 0}
    pre = f"{label}: " if label else ""
    if not ev:
        return {"level": "not_assessable", "evidence": ev,
                "sentence": f"{pre}Heterogeneity of benefit could not be assessed: none of c-for-benefit, "
                            "calibration for benefit or RATE could be estimated on these data."}
    parts = []
    for key, name, t, null, d in (("c_for_benefit", "c-for-benefit", c_for_benefit, "0.5", 2),
                                  ("calibration_for_benefit_slope", "calibration-for-benefit slope", slope, "0", 2),
                                  ("rate_autoc", "RATE AUTOC", autoc, "0", 3)):
        if key in ev:
            side = _side(t, float(null))
            ev[key]["side"] = side
            parts.append(f"{name} {_fmt(t, d)} ({'includes' if side == 'includes' else side} {null})")
    evidence = "; ".join(parts)
    wrong = any(e["side"] == "below" for e in ev.values())
    rank = ev.get("c_for_benefit", {}).get("excludes_null", False)
    size = ev.get("calibration_for_benefit_slope", {}).get("excludes_null", False)
    n_pos = sum(e["excludes_null"] for e in ev.values())
    avg = ""
    if _ok(average):
        avg = f" ({_fmt(average)}{' ' + units if units else ''})"
    if rank and size:
        level = "supported"
        sentence = (f"{pre}the evidence supports individual differences in benefit: the model ranks who benefits more "
                    f"and the differences it predicts show up in the outcomes ({evidence}). Individual predictions "
                    f"of benefit can be used, with their intervals.")
    elif n_pos >= 1:
        level = "inconclusive"
        sentence = (f"{pre}the evidence for individual differences in benefit is inconclusive ({evidence}). "
                    f"Use the average effect{avg} unless other evidence supports individual predictions.")
    else:
        level = "not_supported"
        how = ("the model ranks benefit in the wrong direction" if wrong else
               "the model cannot tell who benefits more from who benefits less")
        sentence = (f"{pre}the data do not show individual differences in benefit ({evidence}): {how}. "
                    f"Use the average effect{avg} for everyone.")
    return {"level": level, "sentence": sentence if pre else sentence[0].upper() + sentence[1:], "evidence": ev}


def separable_case_mix_warning(membership_c, what: str = "the new data's", against: str = "the training data") -> str | None:
    """A warning when the case-mix of ``what`` (possessive: the new data's; in ``train``, a held-out
    trial's) is almost perfectly separable from ``against`` (the training data; the other trials)."""
    if membership_c is None or not math.isfinite(float(membership_c)) or membership_c <= SEPARABLE_C:
        return None
    return (f"{what} case-mix is almost perfectly separable from {against} (membership C "
            f"{membership_c:.3f} > {SEPARABLE_C}): the model is applied outside the population it learnt from, and "
            f"every benefit metric here describes extrapolation")


def spread_warning(pred_sd, slope=None, average=None, level: str = "", units: str = "") -> str | None:
    """A warning when the predicted benefits vary more than the data can support."""
    if pred_sd is None or not math.isfinite(float(pred_sd)) or pred_sd <= 0:
        return None
    u = f" {units}" if units else ""
    if _ok(slope) and slope[2] < 1:
        return (f"the predicted benefits are spread more widely than the data support (SD {pred_sd:.3g}{u}; "
                f"calibration-for-benefit slope {_fmt(slope)}, below 1: observed differences are smaller than "
                f"predicted); shrink them towards the average effect")
    if level in ("not_supported", "not_assessable") and _ok(average):
        half = (average[2] - average[1]) / 2
        if pred_sd > half:
            return (f"the predicted benefits vary (SD {pred_sd:.3g}{u}) by more than the uncertainty of the average "
                    f"effect itself (95% CI half-width {half:.3g}{u}) while the data show no individual differences: "
                    f"the spread is not supported by these data")
    return None


def constant_prediction_verdict(average=None, units: str = "", label: str = "") -> dict:
    """The verdict when the model predicts the same benefit for everyone (a study without effect
    modifiers, or a model shrunk to the constant effect): c-for-benefit is 0.5 by definition and its
    bootstrap interval [0.5, 0.5] has zero width because nothing varies, not because it is known."""
    pre = f"{label}: " if label else ""
    avg = f" ({_fmt(average)} {units})" if _ok(average) else ""
    return {"level": "not_assessable", "evidence": {},
            "sentence": f"{pre}The model predicts the same benefit for every participant, so individual differences "
                        f"in benefit cannot be assessed (c-for-benefit is 0.5 by definition; its interval is not "
                        f"estimable). Use the average effect{avg}."}


def average_benefit_check(predicted_mean, average=None, units: str = "", new_setting=None) -> dict | None:
    """Whether the model's average predicted benefit agrees with the average benefit observed in the
    validation data (calibration-in-the-large for benefit). ``average``: the observed effect as
    (estimate, ci_low, ci_high). None when either is missing or the prediction lies inside the
    interval; else {"side": "over" | "under", "predicted": ..., "observed": [...], "sentence": ...}.
    Without it, a verdict quoting 'the average effect' of the data read as if the model's own average
    were confirmed even where the model's average lay far outside the observed interval.
    ``new_setting``: the model's 95% prediction interval for a new setting (low, high), averaged over these
    participants; when the observed average lies inside it, the sentence says so ("within_pi"): one setting
    differing by this much is what the model's between-trial heterogeneity allows (Project STAR, a held-out
    school: observed 4.60 [2.36, 7.32] vs the model's 1.39, inside its new-school interval)."""
    if predicted_mean is None or not math.isfinite(float(predicted_mean)) or not _ok(average):
        return None
    p = float(predicted_mean)
    if average[1] <= p <= average[2]:
        return None
    side = "over" if p > average[2] else "under"
    u = f" {units}" if units else ""
    out = {"side": side, "predicted": p, "observed": list(average),
           "sentence": f"The model's average predicted benefit ({p:.2f}{u}) lies outside the 95% CI of the benefit "
                       f"observed in these data ({_fmt(average)}): it {side}-predicts the benefit of these patients "
                       "(calibration-in-the-large for benefit); use the observed average effect, or recalibrate "
                       "the model on data like these (validate --update)."}
    if new_setting is not None and _ok(new_setting):
        lo, hi = float(new_setting[0]), float(new_setting[1])
        out["within_pi"] = bool(lo <= float(average[0]) <= hi)
        if out["within_pi"]:
            out["sentence"] += (f" The observed average lies inside the model's 95% prediction interval for a new setting "
                                f"(averaged over these participants: {lo:.2f} to {hi:.2f}): a setting differing this much "
                                "is within the between-trial heterogeneity the model allows, so this alone does not show "
                                "the model is wrong elsewhere.")
    return out
