"""Verdicts from uncertainty: how likely a patient's benefit clears the smallest worthwhile effect.

The scorer reports, per outcome, the benefit of the intervention (comparator minus intervention,
0–100, positive favours the intervention; binary outcomes: a risk difference of the good result) with a 95% confidence interval (CI: the *average* benefit for patients
like this one, estimation and missing-input uncertainty) and a 95% prediction interval (PI: the
benefit *in a new clinic*, which adds the between-trial heterogeneity τ). Both are normal
intervals, so each implies a normal distribution of the benefit,

    benefit ~ N(estimate, SE²)  with  SE = half-width / z(0.975),

from which the probability that the benefit exceeds the threshold T (the outcome's configured
smallest worthwhile effect: a fraction of the patient's baseline score, or an absolute effect) is

    P(benefit > T) = Φ((estimate − T) / SE).

The **verdict** uses the prediction interval's distribution (SE_PI = √(SE_CI² + τ²)): a clinician
decides for one patient in their own clinic, which is a new setting for the model — the
predictive distribution, not the precision of the average. The probability under the CI's
distribution (patients like this on average) is reported next to it. Where τ = 0 the two coincide
and the result says so.

The probability is worded in four levels (:data:`LEVELS`), in the calibrated language of the IPCC
uncertainty guidance (Mastrandrea et al. 2010: "likely" ≥ 66%, "very likely" ≥ 90%,
"unlikely" < 33%): a verdict never turns on 0.1 point either side of the threshold, as a
point-estimate rule does (benefit 12.31 vs threshold 12.4 with a CI of 3.3–21.3 is "possibly",
not "does not clear").

**When the model cannot tell** (level ``uncertain``). The four words grade one probability, and a
probability near 0.5 reads as "possibly"/"unlikely" whether the model is fairly sure the benefit is
small or knows nothing (an SE of ~48 points for a patient far beyond the trials gives P ≈ 0.3–0.5 for
*any* estimate; "unlikely" then reads as evidence against benefit). Following the reading of a
trial's or a patient's interval by the probability of a clinically important benefit *and* of a
clinically important harm (Spiegelhalter, Abrams & Myles 2004, *Bayesian Approaches to Clinical
Trials and Health-Care Evaluation*, ch. 3; GRADE imprecision: an interval that includes both
appreciable benefit and appreciable harm, Guyatt et al. 2011, J Clin Epidemiol 64:1283), the result
also reports P(harm) = P(benefit < −T) under the same (prediction-interval) normal, and the verdict
is **uncertain** when both

    P(benefit > T) ≥ 10%   and   P(benefit < −T) ≥ 10%,

i.e. when neither a worthwhile benefit nor a worthwhile harm is even "very unlikely" (IPCC: < 10%,
the same calibrated language as the levels) — the central 80% of the predictive distribution
contains both −T and +T. For an estimate between −T and +T this needs
SE ≥ (T + |estimate|) / 1.2816, a 95% prediction interval at least ±1.53·(T + |estimate|) wide. Separately, ``confidence`` is ``"low"`` when the patient lies beyond the training
support and the intervals were widened for extrapolation (the "patients like this were rare"
warning of :mod:`predict.clinical_warnings`), ``"usual"`` otherwise (IPCC separates such
confidence in the evidence from likelihood); the words say why.

Interval half-widths are recovered from the reported (clipped) bounds: where one bound was clipped
to the scale's limit, the other side's half-width is used. The per-patient functions are plain
Python (they run on each JSON result); :func:`columns` is the same rule over arrays of patients for
tables (``Scorer.score_table``, the score CSV, Spark), with the column names of :data:`COLUMNS`
(one owner: ``<p>_verdict``, ``<p>_verdict_probability``, ...), and is checked against
:func:`verdict` patient by patient (tests/test_verdict_columns.py).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import erfc

from predict.clinical_warnings import EXTRAPOLATES, RARE_PATIENT, warning_kind

LEVEL = 0.95
Z = 1.959963984540054  # z(0.975)
# (lowest probability, key, words); the first whose lowest probability is <= P applies
LEVELS = (
    (0.90, "very_likely", "very likely"),
    (0.66, "likely", "likely"),
    (0.33, "possibly", "possibly"),
    (0.0, "unlikely", "unlikely"),
)
UNCERTAIN = "uncertain"
UNCERTAIN_WORDS = "uncertain"
UNCERTAIN_REASON = ("the model cannot tell whether this patient gains a worthwhile effect "
                    "(a worthwhile benefit and a worthwhile harm are both plausible)")
UNCERTAIN_TEXT = f"{UNCERTAIN_WORDS}: {UNCERTAIN_REASON}"
UNCERTAIN_SHORT = "cannot tell if worthwhile"
PLAUSIBLE = 0.10  # P(benefit > T) and P(benefit < -T) both at least this: uncertain (IPCC "very unlikely" < 10%)
LOW_CONFIDENCE_TEXT = f"low confidence: {RARE_PATIENT}, so {EXTRAPOLATES} and its intervals were widened"
MODEL_BASED = "model-based probability"
"""How every surface names a verdict's probability: computed from the model's 95% prediction
interval (a normal with its half-width), not a frequency counted among patients like this."""
BASIS = "prediction_interval"
BASIS_TEXT = "the 95% prediction interval (a new clinic), i.e. including between-trial heterogeneity"
CI_LABEL = ("95% confidence interval: the average benefit for patients like this one "
            "(how precisely the model knows the average)")
PI_LABEL = ("95% prediction interval: the benefit for a patient like this one treated in a new clinic "
            "(adds the differences between trials and clinics)")
CRI_LABEL = ("95% credible interval (Bayesian ML-NMR posterior): the average benefit for patients like this one "
             "(how precisely the model knows the average)")
PRED_LABEL = ("95% posterior predictive interval: the benefit for a patient like this one treated in a new clinic "
              "(adds the differences between trials and clinics)")
SAME_LABEL = ("the prediction interval equals the confidence interval because the trials showed no "
              "between-trial heterogeneity (τ = 0) for this outcome; it is not a range for the individual patient")
ARM_LABEL = "95% confidence interval of the expected outcome for patients like this one under that treatment"
NETWORK_ARM_LABEL = ("95% interval of the expected outcome under that treatment for patients like this one, from the "
                     "exercise arm's and the network benefit's uncertainty added as if perfectly correlated "
                     "(conservative: their covariance is not known)")
NO_ARM_INTERVAL = "no interval available: the model holds no per-arm uncertainty for this outcome"
DEFINITION = ("P(benefit > smallest worthwhile effect) = Φ((estimate − threshold) / SE), SE = half-width of the "
              "95% interval / 1.96; the verdict uses the prediction interval (a new clinic); the words: "
              "very likely ≥ 90%, likely 66–90%, possibly 33–66%, unlikely < 33%; "
              "uncertain (the model cannot tell) when both P(benefit > threshold) and "
              "P(benefit < −threshold) are ≥ 10%")
RATIONALE = ("A yes/no rule on the point estimate flips on a fraction of a point and hides the uncertainty; the "
             "probability that the benefit exceeds the smallest worthwhile effect states how sure the model is, "
             "and the prediction interval is used because the patient is treated in a clinic the model has not "
             "seen. The four words follow the IPCC calibrated uncertainty language (Mastrandrea et al. 2010). "
             "Where the interval is so wide that a worthwhile benefit and a worthwhile harm are both plausible "
             "(neither very unlikely, < 10%) no probability word is given: the result says the model cannot "
             "tell (the probability of a clinically important benefit and of a clinically important harm, "
             "Spiegelhalter et al. 2004; GRADE imprecision, Guyatt et al. 2011).")


COLUMNS = (
    ("verdict", "level"),
    ("verdict_probability", "probability"),
    ("verdict_probability_harm", "probability_harm"),
    ("verdict_confidence", "confidence"),
    ("smallest_worthwhile", "threshold"),
)
"""The verdict's table columns ``<p>_<suffix>`` (``<p>`` the task's flat-name stem, e.g.
``pain_short``), each with the key of the JSON ``verdict`` it carries; written for every task whose
outcome has a smallest worthwhile effect, empty where :func:`verdict` gives None (outcome not
predicted for the row, comparator without a prediction)."""
TEXT_COLUMNS = ("verdict", "verdict_confidence")


def column_names(prefix: str) -> list[str]:
    """The verdict's table column names of one task (``prefix`` = ``<outcome>_<follow_up>``)."""
    return [f"{prefix}_{suffix}" for suffix, _ in COLUMNS]


def percent(p: float) -> str:
    """A model-based probability as shown to a clinician: whole percent, but never "0%" or "100%"
    (a normal tail is never exactly either, and the model's own error is larger): "<1%", ">99%"."""
    text = f"{p:.0%}"
    return {"0%": "<1%", "100%": ">99%"}.get(text, text)


def probability_words(v: dict) -> str:
    """A verdict's probabilities in words for text surfaces (demo, CDS card): "model-based
    probability of a worthwhile benefit 37% in a new clinic, of a worthwhile harm 4%"."""
    text = f"{MODEL_BASED} of a worthwhile benefit {percent(v['probability'])} in a new clinic"
    if v.get("probability_harm") is not None:
        text += f", of a worthwhile harm {percent(v['probability_harm'])}"
    return text


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def level_of(p: float) -> tuple[str, str]:
    """(key, words) of probability ``p`` (0..1)."""
    for lo, key, words in LEVELS:
        if p >= lo:
            return key, words
    return LEVELS[-1][1], LEVELS[-1][2]


def se_from_interval(estimate: Any, iv: Any, limit: float) -> float | None:
    """The SE behind a reported 95% interval ``[low, high]`` around ``estimate`` (bounds clipped
    to ±``limit``): the half-width / z of an unclipped side. Where both sides were clipped (an
    interval spanning the whole scale) the larger distance from the estimate to a bound / z, a
    lower bound of the SE (P(benefit > T) and P(benefit < −T) only grow towards 0.5 with a larger SE
    where they are below it, so an ``uncertain`` verdict found with it holds). None if unknown."""
    if estimate is None or not iv or iv[0] is None or iv[1] is None:
        return None
    lo, hi, b = float(iv[0]), float(iv[1]), float(estimate)
    lo_ok, hi_ok = lo > -limit + 1e-9, hi < limit - 1e-9
    if lo_ok and hi_ok:
        return (hi - lo) / (2 * Z)
    if hi_ok:
        return (hi - b) / Z
    if lo_ok:
        return (b - lo) / Z
    return max(hi - b, b - lo) / Z


def probability_above(estimate: float, se: float | None, threshold: float) -> float | None:
    """P(benefit > threshold) under N(estimate, se²); a step at the threshold if se = 0."""
    if se is None or estimate is None or threshold is None:
        return None
    if se <= 0:
        return 1.0 if estimate > threshold else 0.0
    return norm_cdf((float(estimate) - float(threshold)) / se)


def verdict(estimate: Any, ci: Any, pi: Any, threshold: Any, limit: float = 100.0,
            rare: bool = False) -> dict | None:
    """The verdict dict of one outcome (None if the benefit or threshold is unknown). ``rare``:
    the patient lies beyond the training support (intervals widened): ``confidence`` "low"."""
    if estimate is None or threshold is None:
        return None
    se_ci = se_from_interval(estimate, ci, limit)
    se_pi = se_from_interval(estimate, pi, limit)
    p = probability_above(estimate, se_pi, threshold)
    p_avg = probability_above(estimate, se_ci, threshold)
    if p is None:
        return None
    key, words = level_of(p)
    text, short = f"{words} to clear the smallest worthwhile effect", f"{words} worthwhile"
    p_harm = None
    if float(threshold) > 0:
        p_harm = probability_above(-float(estimate), se_pi, float(threshold))  # P(benefit < -T)
    if p_harm is not None and p >= PLAUSIBLE and p_harm >= PLAUSIBLE:
        key, words, text, short = UNCERTAIN, UNCERTAIN_WORDS, UNCERTAIN_TEXT, UNCERTAIN_SHORT
    same = bool(ci and pi and ci[0] == pi[0] and ci[1] == pi[1])
    return {
        "level": key,
        "words": words,
        "text": text,
        "short": short,
        "probability": round(p, 4),
        "probability_harm": None if p_harm is None else round(p_harm, 4),
        "confidence": "low" if rare else "usual",
        "confidence_text": LOW_CONFIDENCE_TEXT if rare else None,
        "probability_average_patient": None if p_avg is None else round(p_avg, 4),
        # the probabilities as every surface shows them (:func:`percent`): one owner of the rule for text and the calculator
        "percent": {"probability": percent(p), "probability_harm": None if p_harm is None else percent(p_harm),
                    "probability_average_patient": None if p_avg is None else percent(p_avg)},
        "threshold": threshold,
        "basis": BASIS,
        "pi_equals_ci": same,
    }


def annotate(results: list[dict]) -> list[dict]:
    """Add, in place, to every continuous outcome with a smallest worthwhile threshold its
    ``verdict`` (see :func:`verdict`), to every benefit its plain-language interval ``labels``,
    to every arm without an interval an explicit ``interval_note``, and to the result the
    ``verdict_definition``. Returns ``results``."""
    for r in results:
        rare = any(isinstance(w, str) and warning_kind(w) == "rare_patient" for w in (r.get("warnings") or []))
        for o in (r.get("outcomes") or {}).values():
            b = o.get("benefit") or {}
            no_rule = o.get("smallest_worthwhile") is None  # none configured for the outcome
            limit = 1.0 if str(o.get("scale", "")).startswith("probability") else 100.0
            ci, pi = b.get("ci"), b.get("prediction_interval")
            same = bool(ci and pi and ci[0] is not None and ci[0] == pi[0] and ci[1] == pi[1])
            bayes = (o.get("evidence") or {}).get("intervals") == "bayesian"  # network node scored from ML-NMR draws
            b["labels"] = {"ci": CRI_LABEL if bayes else CI_LABEL,
                           "prediction_interval": SAME_LABEL if same else (PRED_LABEL if bayes else PI_LABEL)}
            b["pi_equals_ci"] = same
            for arm in ("intervention", "comparator"):
                a = o.get(arm)
                if isinstance(a, dict) and a.get("expected") is not None:
                    if a.get("interval") is None:
                        a["interval_note"] = NO_ARM_INTERVAL
                    else:
                        a["interval_label"] = NETWORK_ARM_LABEL if (arm == "comparator" and "basis" in a) else ARM_LABEL
            if no_rule or not o.get("available", True):
                o["verdict"] = None
                continue
            th = (o.get("smallest_worthwhile") or {}).get("threshold")
            o["verdict"] = verdict(b.get("estimate"), ci, pi, th, limit, rare)
        r["verdict_definition"] = {"definition": DEFINITION, "basis": BASIS_TEXT,
                                   "levels": [{"level": k, "words": w, "from_probability": lo} for lo, k, w in LEVELS],
                                   "uncertain": {"level": UNCERTAIN, "text": UNCERTAIN_TEXT,
                                                 "when": "P(benefit > threshold) and P(benefit < -threshold) "
                                                         f"both >= {PLAUSIBLE:.0%}"}}
    return results


def _se_columns(estimate: np.ndarray, low: np.ndarray, high: np.ndarray, limit: float) -> np.ndarray:
    """:func:`se_from_interval` over arrays (NaN where unknown)."""
    ok = np.isfinite(estimate) & np.isfinite(low) & np.isfinite(high)
    with np.errstate(invalid="ignore"):
        lo_ok, hi_ok = ok & (low > -limit + 1e-9), ok & (high < limit - 1e-9)
    both = (high - low) / (2 * Z)
    whole = np.maximum(high - estimate, estimate - low) / Z  # both sides clipped: a lower bound
    return np.where(lo_ok & hi_ok, both, np.where(hi_ok, (high - estimate) / Z,
                                                  np.where(lo_ok, (estimate - low) / Z, np.where(ok, whole, np.nan))))


def _above_columns(estimate: np.ndarray, se: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """:func:`probability_above` over arrays (NaN where unknown)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 0.5 * erfc(-((estimate - threshold) / se) / math.sqrt(2.0))
        step = np.where(estimate > threshold, 1.0, 0.0)
        p = np.where(se <= 0, step, p)
    return np.where(np.isfinite(se) & np.isfinite(estimate) & np.isfinite(threshold), p, np.nan)


def columns(estimate: Any, ci: tuple, pi: tuple, threshold: Any, limit: float = 100.0,
            rare: Any = False) -> dict[str, np.ndarray]:
    """:func:`verdict` for arrays of patients, as the table columns of :data:`COLUMNS` (keyed by
    suffix): ``verdict`` and ``verdict_confidence`` text (None where there is no verdict), the
    probabilities rounded as in the JSON verdict and the threshold (NaN where there is none).
    ``ci``/``pi``: (low, high) arrays of the reported (clipped) bounds; ``rare``: per patient,
    beyond the training support (``confidence`` "low")."""
    b = np.asarray(estimate, float)
    n = b.shape[0]
    th = np.broadcast_to(np.asarray(threshold, float), (n,))
    se_pi = _se_columns(b, np.asarray(pi[0], float), np.asarray(pi[1], float), limit)
    p = _above_columns(b, se_pi, th)
    ok = np.isfinite(p)
    with np.errstate(invalid="ignore"):
        harm = np.where(ok & (th > 0), _above_columns(-b, se_pi, th), np.nan)
        uncertain = ok & (p >= PLAUSIBLE) & (harm >= PLAUSIBLE)
    level = np.full(n, None, dtype=object)
    for lo, key, _ in reversed(LEVELS):  # the highest level whose lowest probability p reaches
        with np.errstate(invalid="ignore"):
            level[ok & (p >= lo)] = key
    level[uncertain] = UNCERTAIN
    conf = np.where(np.broadcast_to(np.asarray(rare, bool), (n,)), "low", "usual").astype(object)
    conf[~ok] = None
    return {"verdict": level, "verdict_probability": np.where(ok, np.round(p, 4), np.nan),
            "verdict_probability_harm": np.round(harm, 4), "verdict_confidence": conf,
            "smallest_worthwhile": np.where(ok, th, np.nan)}
