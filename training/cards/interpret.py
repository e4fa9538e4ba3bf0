"""A sentence per performance metric: what its value means for a clinician deciding with the model.

Each sentence gives the estimate with its 95% CI (rounded to what the CI's width supports; "no CI"
said when none is given) and reads it: a c-for-benefit whose CI includes
0.5 "cannot be told apart from chance", a calibration slope far from 1 says in which direction the
predicted differences between patients are wrong.
"""
from __future__ import annotations

import math

from training.cards.format import ci_decimals, fnum


def _ci(lo, hi) -> tuple[float, float] | None:
    try:
        a, b = float(lo), float(hi)
    except (TypeError, ValueError):
        return None
    return (a, b) if math.isfinite(a) and math.isfinite(b) else None


def _decimals(ci) -> int:
    return ci_decimals(*ci) if ci is not None else ci_decimals(None, None)


def _num(e, ci) -> str:
    """The estimate with its 95% CI, rounded to what the CI's width supports; said when there is no CI."""
    d = _decimals(ci)
    if ci is None:
        return f"{fnum(e, d)}, no CI"
    return f"{fnum(e, d)}, 95% CI {fnum(ci[0], d)} to {fnum(ci[1], d)}"


def _c_benefit(e, ci):
    chance = ci is not None and ci[0] <= 0.5 <= ci[1]
    return (f"c-for-benefit {_num(e, ci)}: of two patients, the one predicted to benefit more does benefit more "
            f"{100 * e:.0f}% of the time (50% = chance); "
            + ("its CI includes 50%, so the ranking of patients by predicted benefit cannot be told apart from chance"
               if chance else "a weak ranking of patients by benefit: use the predicted size, not the ranking"
               if e < 0.6 else "a useful ranking of patients by benefit"))


def _slope(e, ci):
    if e < 0:
        what = ("the predicted differences between patients point the wrong way: those predicted to benefit more "
                "benefited less")
    elif e < 0.8:
        what = ("predicted differences between patients are too large: a patient predicted to benefit much more "
                "than average benefits less so in reality")
    elif e > 1.2:
        what = "predicted differences between patients are too small"
    else:
        what = "the predicted differences between patients are about right in size"
    return f"calibration slope for benefit {_num(e, ci)} (1 = ideal): {what}"


def _citl(e, ci):
    if ci is not None and ci[0] <= 0 <= ci[1]:
        return (f"calibration-in-the-large for benefit {_num(e, ci)} (0 = ideal; observed minus predicted): its CI includes "
                "0, so no systematic over- or under-prediction of the average benefit is shown")
    return (f"calibration-in-the-large for benefit {_num(e, ci)} (0 = ideal; observed minus predicted): on average the "
            f"predicted benefit is {'too large' if e < 0 else 'too small'} by about {abs(e):.{_decimals(ci)}f} outcome units")


def _intercept(e, ci):
    zero = ci is not None and ci[0] <= 0 <= ci[1]
    return (f"calibration intercept for benefit {_num(e, ci)} (0 = ideal): patients predicted to gain nothing "
            + ("gain about nothing (CI includes 0)" if zero else f"gain about {e:.{_decimals(ci)}f} in reality"))


def _eavg(e, ci):
    return f"E-for-benefit {_num(e, ci)}: a patient's predicted benefit is off by about {e:.{_decimals(ci)}f} outcome units on average"


def _autoc(e, ci):
    pos = ci is not None and ci[0] > 0
    return (f"AUTOC {_num(e, ci)}: treating first those predicted to benefit most "
            + ("gains more than treating at random" if pos else "cannot be shown to gain over treating at random"))


def _qini(e, ci):
    pos = ci is not None and ci[0] > 0
    return f"Qini {_num(e, ci)}: " + ("targeting by predicted benefit gains over random targeting" if pos else
                                "no shown gain of targeting by predicted benefit over random targeting")


def _r2(e, ci):
    return f"outcome R² {_num(e, ci)}: the expected score under the treatment received explains {100 * e:.0f}% of the variation"


def _cstat(e, ci):
    return f"outcome C-statistic {_num(e, ci)}: discrimination of who recovers under the treatment received (0.5 = chance)"


def _o_slope(e, ci):
    return (f"outcome calibration slope {_num(e, ci)} (1 = ideal) for the expected outcome under each arm: "
            + ("expected scores spread too much" if e < 0.8 else "too little" if e > 1.2 else "about right"))


def _o_citl(e, ci):
    return (f"outcome calibration-in-the-large {_num(e, ci)} (0 = ideal): the average expected outcome is off by "
            f"{abs(e):.{_decimals(ci)}f}")


MEANING = {
    "c_for_benefit": _c_benefit, "calibration_slope_for_benefit": _slope, "citl_for_benefit": _citl,
    "calibration_intercept_for_benefit": _intercept, "e_avg_for_benefit": _eavg, "autoc": _autoc, "qini": _qini,
    "outcome_r2": _r2, "outcome_c_statistic": _cstat, "outcome_slope": _o_slope, "outcome_citl": _o_citl,
}


def interpret(metric: str, estimate, ci_low=None, ci_high=None) -> str | None:
    """The sentence for ``metric`` at ``estimate`` (None if unknown metric or no finite value)."""
    f = MEANING.get(metric)
    try:
        e = float(estimate)
    except (TypeError, ValueError):
        return None
    if f is None or not math.isfinite(e):
        return None
    return f(e, _ci(ci_low, ci_high))
