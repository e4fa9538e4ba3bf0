"""Verdicts from uncertainty (predict/verdict.py) and entered-vs-imputed explanations
(predict/imputed.py), alone and in the scorer's results."""
from __future__ import annotations

import math

import numpy as np
import pytest

from predict import imputed, verdict as V


def test_levels_and_their_boundaries():
    assert [V.level_of(p)[0] for p in (0.95, 0.90, 0.8999, 0.66, 0.6599, 0.33, 0.3299, 0.0)] == [
        "very_likely", "very_likely", "likely", "likely", "possibly", "possibly", "unlikely", "unlikely"]


def test_the_audit_examples_no_longer_flip_on_the_point_estimate():
    # pain 12.31 vs threshold 12.4 with CI 3.3-21.3: the point rule said "does not clear"
    v = V.verdict(12.31, [3.3, 21.3], [3.3, 21.3], 12.4)
    assert v["level"] == "possibly" and v["probability"] == pytest.approx(0.4922, abs=1e-3) and v["pi_equals_ci"]
    # function 10.3 vs 8.2 with CI 2.5-18.2: the point rule said "clears"
    v = V.verdict(10.3, [2.5, 18.2], [1.0, 19.6], 8.2)
    se = (19.6 - 1.0) / (2 * 1.959963984540054)
    assert v["probability"] == pytest.approx(0.5 * math.erfc(-(10.3 - 8.2) / se / math.sqrt(2)), abs=1e-4)
    assert v["level"] == "likely" and v["basis"] == "prediction_interval"
    # the probability under the CI (average patient) is larger than under the wider PI when above the threshold
    assert v["probability_average_patient"] > v["probability"]


def test_a_probability_is_shown_as_model_based_and_never_as_certain():
    assert [V.percent(p) for p in (0.0, 0.0049, 0.005, 0.0051, 0.374, 0.9949, 0.995, 0.9951, 1.0)] == [
        "<1%", "<1%", "<1%", "1%", "37%", "99%", ">99%", ">99%", ">99%"]
    v = {"probability": 0.9999, "probability_harm": 0.0}
    assert V.probability_words(v) == ("model-based probability of a worthwhile benefit >99% in a new clinic, "
                                      "of a worthwhile harm <1%")
    assert V.probability_words({"probability": 0.37, "probability_harm": None}).endswith("37% in a new clinic")


def test_se_from_a_clipped_interval_uses_the_unclipped_side():
    assert V.se_from_interval(95.0, [85.2, 100.0], 100) == pytest.approx(9.8 / 1.959963984540054)
    assert V.se_from_interval(-95.0, [-100.0, -85.2], 100) == pytest.approx(9.8 / 1.959963984540054)
    # both sides clipped (the interval spans the scale): a lower bound of the SE, never "no verdict"
    assert V.se_from_interval(-5.9, [-100.0, 100.0], 100) == pytest.approx(105.9 / 1.959963984540054)
    assert V.se_from_interval(1.0, [None, 2.0], 100) is None
    assert V.verdict(None, [1, 2], [1, 2], 3) is None


def test_split_contributions_and_the_imputation_warning():
    F = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    c = np.array([[0.5, 2.0, -1.0], [1.0, 1.0, 1.0]])
    ent, imp = imputed.split_contributions(c, F)
    assert ent.tolist() == [[0.5, 0.0, -1.0], [0.0, 0.0, 0.0]] and imp.tolist() == [[0.0, 2.0, 0.0], [1.0, 1.0, 1.0]]
    w = imputed.imputation_warnings(F, [0, 1, 2], 0.5)
    assert w[0] is None and w[1].startswith("3 of the model's 3 effect modifiers were not entered")
    assert imputed.share_threshold({"imputed_share_warning": 0.25}) == 0.25
    assert imputed.share_threshold({"imputed_share_warning": True}) == imputed.IMPUTED_SHARE_WARN


def test_scorer_results_carry_verdicts_labels_and_entered_factors_only(scorer):
    p = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "female": 1}
    r = scorer.score([p], "usual_care")[0]
    missing = {m["name"] for m in r["missing"]}
    assert missing and not ({f["name"] for f in r["top_factors"]} & missing)
    assert {f["name"] for f in r["imputed_factors"]} <= missing
    share = len(missing) / len(scorer.schema.names)
    assert (share > imputed.IMPUTED_SHARE_WARN) == any("effect modifiers were not entered" in w for w in r["warnings"])
    for o in r["outcomes"].values():
        b = o["benefit"]
        assert b["labels"]["ci"] == V.CI_LABEL and b["pi_equals_ci"] == (b["ci"] == b["prediction_interval"])
        for arm in ("intervention", "comparator"):
            assert (o[arm]["interval"] is None and o[arm]["expected"] is not None) == ("interval_note" in o[arm])
        if o["outcome"] == "global_recovery" or not o["available"]:
            assert o["verdict"] is None
            continue
        v = o["verdict"]
        th = o["smallest_worthwhile"]["threshold"]
        se = (b["prediction_interval"][1] - b["prediction_interval"][0]) / (2 * V.Z)
        assert v["threshold"] == th
        assert v["probability"] == pytest.approx(0.5 * math.erfc(-(b["estimate"] - th) / se / math.sqrt(2)), abs=1e-4)
        both = v["probability"] >= V.PLAUSIBLE and v["probability_harm"] >= V.PLAUSIBLE
        assert v["level"] == ("uncertain" if both else V.level_of(v["probability"])[0])
        assert v["probability_harm"] == pytest.approx(0.5 * math.erfc(-(-th - b["estimate"]) / se / math.sqrt(2)), abs=1e-4)
    assert r["verdict_definition"]["definition"] == V.DEFINITION


def test_heavy_imputation_warning_in_the_table_too(scorer):
    df = scorer.score_table([{"baseline_pain": 50.0, "baseline_function": 40.0}], "usual_care")
    assert "effect modifiers were not entered" in df["warnings"][0]


def test_recovery_arm_intervals_match_a_monte_carlo_of_the_bootstrap_covariance(scorer):
    """P(recovery) under each arm (predict/arm_intervals.py): for a patient with every input, the
    95% interval must be the 2.5% and 97.5% quantiles of P over theta ~ N(theta_hat, V) through
    the logistic link (an independent computation); the scorer's point value is its centre's expit."""
    from predict import arm_intervals as A
    from tests._runtime import rt

    t = next(t for t in scorer._tasks if t.outcome_type == "binary" and A.available(t.exp))
    full = {c.name: (c.categories[0] if c.type == "categorical" else 0 if c.type == "binary" else
                     (c.range[0] + c.range[1]) / 2 if c.range else 1.0) for c in scorer.schema.covariates}
    full.update({"baseline_pain": 62.0, "baseline_function": 41.0})
    F, _ = scorer.validate([full])
    comp = t.exp["comparators"][0]
    lin = t.exp["linear"]
    Fimp = rt.impute_mean(t.exp["imputer"], F)
    eta, grad = rt.linear_parts(lin, list(t.exp["comparators"]), Fimp)
    V = np.asarray(t.exp["interval"]["theta_cov"], float)
    th = np.asarray(lin["theta"], float)
    D = np.random.default_rng(3).multivariate_normal(np.zeros(th.size), V, size=40000)
    r = scorer.score([full], comp)[0]["outcomes"][t.task]
    for k, arm in (("__active__", "intervention"), (comp, "comparator")):
        g = grad[k][0]
        p = 1 / (1 + np.exp(-(g @ th + D @ g)))
        lo, hi = r[arm]["interval"]
        assert lo == pytest.approx(np.quantile(p, 0.025), abs=0.01) and hi == pytest.approx(np.quantile(p, 0.975), abs=0.01)
        assert lo < r[arm]["expected"] < hi
    # with inputs missing the interval widens (the spread over their conditional draws is added)
    F2, _ = scorer.validate([{"baseline_pain": 62.0, "baseline_function": 41.0}])
    (_, sd_missing), _ = A.binary_parts(t.exp, F2, comp)
    _, grad2 = rt.linear_parts(lin, list(t.exp["comparators"]), rt.impute_mean(t.exp["imputer"], F2))
    g2 = grad2["__active__"][0]
    assert sd_missing[0] > np.sqrt(g2 @ V @ g2) + 1e-6  # logit scale: estimation SE plus the draws' spread


def test_network_nodes_scored_from_ml_nmr_draws_are_labelled_credible_and_posterior_predictive():
    """A Bayesian interval is not called a confidence interval (evidence.intervals == 'bayesian')."""
    def result(evidence):
        return [{"outcomes": {"pain__short": {
            "available": True, "scale": "0-100 points, higher = worse", "smallest_worthwhile": None,
            "benefit": {"estimate": 4.0, "ci": [1.0, 7.0], "prediction_interval": [-2.0, 10.0]},
            **({"evidence": evidence} if evidence is not None else {})}}}]

    bayes = V.annotate(result({"type": "indirect only", "intervals": "bayesian"}))[0]["outcomes"]["pain__short"]
    freq = V.annotate(result({"type": "direct only"}))[0]["outcomes"]["pain__short"]
    learner = V.annotate(result(None))[0]["outcomes"]["pain__short"]
    assert bayes["benefit"]["labels"] == {"ci": V.CRI_LABEL, "prediction_interval": V.PRED_LABEL}
    assert freq["benefit"]["labels"] == learner["benefit"]["labels"] == {"ci": V.CI_LABEL, "prediction_interval": V.PI_LABEL}
    assert "credible" in V.CRI_LABEL and "confidence" not in V.CRI_LABEL


def test_a_patient_the_model_knows_nothing_about_is_uncertain_not_unlikely():
    # the 93-year-old with BMI 47 under the default model (s12u, session 12): PI -94..95, T 12.4.
    # Before: "unlikely to clear the smallest worthwhile effect" (P 0.40 -> "possibly"; the CI-based
    # pain short -51..49 gave 0.31 "unlikely"), though a worthwhile harm was just as plausible.
    from statistics import NormalDist
    est, ci, pi, th = -1.1, [-51.1, 49.0], [-54.5, 52.3], 12.4
    v = V.verdict(est, ci, pi, th, rare=True)
    se = (pi[1] - pi[0]) / (2 * V.Z)
    ref = NormalDist(est, se)  # an independent normal
    assert v["probability"] == pytest.approx(1 - ref.cdf(th), abs=1e-4)
    assert v["probability_harm"] == pytest.approx(ref.cdf(-th), abs=1e-4)
    assert v["level"] == "uncertain" and v["words"] == "uncertain" and v["text"] == V.UNCERTAIN_TEXT
    assert v["short"] == V.UNCERTAIN_SHORT and "cannot tell" in v["text"]
    assert v["confidence"] == "low" and v["confidence_text"] == V.LOW_CONFIDENCE_TEXT
    assert v["probability"] < 0.33  # the old rule's word would have been "unlikely"


def test_uncertain_only_when_both_a_worthwhile_benefit_and_harm_are_plausible():
    th = 10.0
    for est in (-8.0, -2.0, 0.0, 3.0, 9.0):
        for half in (5.0, 15.0, 25.0, 40.0, 80.0):
            v = V.verdict(est, [est - half / 2, est + half / 2], [est - half, est + half], th)
            se = half / V.Z
            p_b = 0.5 * math.erfc(-(est - th) / se / math.sqrt(2))
            p_h = 0.5 * math.erfc(-(-th - est) / se / math.sqrt(2))
            both = p_b >= V.PLAUSIBLE and p_h >= V.PLAUSIBLE
            assert (v["level"] == "uncertain") == both, (est, half)
            if not both:  # ordinary: the level, words and text exactly as before
                assert v["level"] == V.level_of(p_b)[0]
                assert v["text"] == f"{v['words']} to clear the smallest worthwhile effect"
                assert v["short"] == f"{v['words']} worthwhile"
            assert v["confidence"] == "usual" and v["confidence_text"] is None
    # the boundary: SE = (T + |estimate|) / z(0.90) puts the far side at exactly 10%
    z90 = 1.2815515655446004
    se = (th + 0.0) / z90
    v = V.verdict(0.0, None, [-se * V.Z * 1.001, se * V.Z * 1.001], th)
    assert v["level"] == "uncertain"
    v = V.verdict(0.0, None, [-se * V.Z * 0.999, se * V.Z * 0.999], th)
    assert v["level"] == "unlikely"
    # a zero threshold: no harm side, no uncertain state
    v = V.verdict(1.0, [-50, 52], [-60, 62], 0.0)
    assert v["probability_harm"] is None and v["level"] != "uncertain"


def test_a_prediction_interval_spanning_the_whole_scale_is_uncertain_not_missing():
    # the small model's 95-year-old with BMI 55 vs usual_care: PI clipped to -100..100 on both sides.
    # Before: verdict None (no SE from a clipped side), so every surface showed no verdict at all for
    # the patient the model knows least about.
    v = V.verdict(-5.9, [-26.8, 14.9], [-100.0, 100.0], 12.4, rare=True)
    assert v is not None and v["level"] == "uncertain" and v["confidence"] == "low"
    # monotone: with the SE's lower bound both tails are already >= 10%, and a larger SE keeps them so
    for se in (105.9 / V.Z, 200.0, 1000.0):
        assert V.probability_above(-5.9, se, 12.4) >= V.PLAUSIBLE and V.probability_above(5.9, se, 12.4) >= V.PLAUSIBLE


def test_annotate_reads_the_rare_patient_warning_into_confidence():
    from predict.clinical_warnings import RARE_TEXT
    o = {"benefit": {"estimate": 0.3, "ci": [-92.2, 92.8], "prediction_interval": [-94.0, 94.7]},
         "smallest_worthwhile": {"threshold": 12.4}, "scale": "0-100"}
    rare = {"outcomes": {"pain__moderate": o}, "warnings": [RARE_TEXT.format(pct=99.9, f=8.0)]}
    plain = {"outcomes": {"pain__moderate": {**o, "benefit": dict(o["benefit"])}}, "warnings": []}
    V.annotate([rare, plain])
    assert rare["outcomes"]["pain__moderate"]["verdict"]["confidence"] == "low"
    assert plain["outcomes"]["pain__moderate"]["verdict"]["confidence"] == "usual"
    assert rare["outcomes"]["pain__moderate"]["verdict"]["level"] == "uncertain"
    assert rare["verdict_definition"]["uncertain"]["text"] == V.UNCERTAIN_TEXT


def test_the_93_year_old_through_the_scorer_gets_low_confidence_and_both_probabilities(scorer):
    from predict.clinical_warnings import RARE_PATIENT
    old = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 93, "bmi": 47}
    plain = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "bmi": 26}
    r_old, r_plain = scorer.score([old, plain], "usual_care")
    for r in (r_old, r_plain):
        rare = any(w.startswith(RARE_PATIENT) for w in r["warnings"])
        for o in r["outcomes"].values():
            v = o.get("verdict")
            if not v:
                continue
            assert v["confidence"] == ("low" if rare else "usual")
            both = v["probability"] >= V.PLAUSIBLE and v["probability_harm"] >= V.PLAUSIBLE
            assert (v["level"] == "uncertain") == both
            assert v["text"] == (V.UNCERTAIN_TEXT if both else f"{v['words']} to clear the smallest worthwhile effect")
    assert any(w.startswith(RARE_PATIENT) for w in r_old["warnings"])
    assert r_old["verdict_definition"]["uncertain"]["level"] == "uncertain"


def test_percent_texts_are_the_one_rule_every_surface_shows():
    """The verdict carries its probabilities as shown (predict.verdict.percent), so the calculator does not
    round them again: never "0%" or "100%", and the same text as the CDS card and demo words."""
    from predict.verdict import percent, probability_words, verdict

    v = verdict(30.0, [29.0, 31.0], [28.0, 32.0], 10.0)
    assert v["percent"] == {"probability": ">99%", "probability_harm": "<1%", "probability_average_patient": ">99%"}
    w = verdict(5.0, [-20.0, 30.0], [-30.0, 40.0], 10.0)
    assert w["percent"]["probability"] == percent(w["probability"]) and w["percent"]["probability"].endswith("%")
    assert w["percent"]["probability"] in probability_words(w)
    assert verdict(5.0, [0.0, 10.0], [0.0, 10.0], 0.0)["percent"]["probability_harm"] is None
