"""Honest verdicts on heterogeneity of benefit, and a constant predictor scoring exactly 0.5."""
import numpy as np
import pytest

from training import metrics as M
from training.verdicts import heterogeneity_verdict, separable_case_mix_warning, spread_warning


def _trial(seed=0, n=600, k=4):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    cl = rng.integers(0, k, n)
    prog = rng.normal(50, 10, n)
    y = prog - 5 * t + rng.normal(0, 8, n)  # lower is better, one common effect of 5 points
    return prog, y, t, cl


def test_constant_predictor_scores_exactly_one_half():
    prog, y, t, cl = _trial()
    # A constant effect computed as a difference of two predictions carries floating-point noise
    # that follows the prognosis (here, deliberately, the outcome itself): ranked as such it
    # would look like discrimination.
    b = 5.0 + 1e-13 * (y - y.mean())
    common = dict(outcome_type="continuous", higher_is_better=False, cluster=cl)
    r = M.c_for_benefit(b, y, t, n_boot=50, random_state=1, **common)
    assert r.c_for_benefit == 0.5
    assert r.ci_low == 0.5 and r.ci_high == 0.5
    rate = M.rank_average_treatment_effect(b, y, t, n_boot=50, random_state=1, **common)
    assert abs(rate.autoc) < 1e-12 and abs(rate.qini) < 1e-12 and rate.autoc_ci_low <= 0 <= rate.autoc_ci_high
    # the noise alone, without tie handling, is not 0.5: the test can fail
    from scipy import stats

    assert stats.kendalltau(b, y).statistic > 0.99


def test_noise_free_ranking_is_unchanged():
    prog, y, t, cl = _trial(seed=2)
    b = -(prog - 50) / 10  # a non-constant predictor: ties only where the values are equal
    common = dict(outcome_type="continuous", higher_is_better=False, cluster=cl)
    a = M.c_for_benefit(b, y, t, n_boot=0, random_state=3, **common)
    c = M.c_for_benefit(b + 1e-3, y, t, n_boot=0, random_state=3, **common)
    assert a.c_for_benefit == c.c_for_benefit


def test_verdict_levels_and_wording():
    v = heterogeneity_verdict((0.62, 0.56, 0.68), (0.9, 0.4, 1.4), (0.8, 0.2, 1.4), (-5.0, -7.0, -3.0), "points")
    assert v["level"] == "supported" and v["sentence"].startswith("The evidence supports individual differences")
    v = heterogeneity_verdict((0.51, 0.47, 0.55), (0.1, -0.9, 1.1), (0.05, -0.3, 0.4), (-5.0, -7.0, -3.0), "points",
                              label="pain vs usual care")
    assert v["level"] == "not_supported"
    assert "Use the average effect (-5.00 [-7.00, -3.00] points) for everyone" in v["sentence"]
    assert v["sentence"].startswith("pain vs usual care: the data do not show") and "includes 0.5" in v["sentence"]
    v = heterogeneity_verdict((0.58, 0.52, 0.64), (0.2, -0.5, 0.9), None)
    assert v["level"] == "inconclusive"
    v = heterogeneity_verdict((0.41, 0.29, 0.48), (-0.2, -1.7, 1.3), (-1.4, -3.8, -0.2), (-0.1, -1.3, 1.1))
    assert v["level"] == "not_supported" and "(below 0.5)" in v["sentence"] and "(below 0)" in v["sentence"]
    assert "ranks benefit in the wrong direction" in v["sentence"]
    v = heterogeneity_verdict(None, (np.nan, np.nan, np.nan), None)
    assert v["level"] == "not_assessable"


def test_warnings():
    assert separable_case_mix_warning(0.995).startswith("the new data's case-mix is almost perfectly separable")
    assert separable_case_mix_warning(0.98) is None and separable_case_mix_warning(None) is None
    w = spread_warning(14.0, (0.1, -0.3, 0.5), None, "not_supported", "points")
    assert "spread more widely than the data support" in w
    w = spread_warning(14.0, (0.3, -0.6, 1.2), (5.0, 2.0, 8.0), "not_supported", "points")
    assert "by more than the uncertainty of the average effect" in w
    assert spread_warning(1.0, (0.3, -0.6, 1.2), (5.0, 2.0, 8.0), "not_supported") is None
    assert spread_warning(14.0, (0.9, 0.5, 1.3), (5.0, 2.0, 8.0), "supported") is None


@pytest.mark.parametrize("words", [("exercise",), ("low back", "lbp", "back pain")])
def test_verdict_wording_is_condition_neutral(words):
    import inspect

    import training.verdicts as V

    text = inspect.getsource(V).lower()
    assert not any(w in text for w in words)
