"""The metrics' and ``validate --update``'s logistic fits under separation (s13f): Firth's estimate
where the maximum-likelihood one does not exist (Konis's LP test), the ML fit untouched otherwise."""
import numpy as np
import pytest

from predict.errors import LbpError
from training.learners.firth_profile import firth, profile_ci
from training.metrics import outcome_performance
from training.metrics._stats import logistic_fit, logistic_fit_firth


def test_separated_fit_is_firths_and_says_so_and_the_ml_fit_is_untouched_otherwise():
    y = np.r_[np.ones(46), np.zeros(4), np.ones(49)]  # laryngoscope: video 46/50, Macintosh 49/49
    X = np.column_stack([np.ones(99), np.r_[np.ones(50), np.zeros(49)]])
    beta, used = logistic_fit_firth(X, y)
    assert used and beta == pytest.approx([4.59511985013459, -2.25974493431755], abs=1e-6)  # R logistf
    y2 = y.copy()
    y2[60] = 0.0  # one Macintosh failure: the ML estimate exists (46/50 vs 48/49)
    beta2, used2 = logistic_fit_firth(X, y2)
    assert not used2 and beta2 == pytest.approx([np.log(48), np.log(46 / 4) - np.log(48)], abs=1e-8)
    assert np.array_equal(logistic_fit(X, y2), beta2)
    # an intercept with an offset, every participant with the event: Firth's intercept, finite
    off = np.linspace(-1, 1, 10)
    b, used3 = logistic_fit_firth(np.ones((10, 1)), np.ones(10), off)
    assert used3 and np.isfinite(b).all() and b[0] == pytest.approx(firth(np.ones((10, 1)), np.ones(10), off).beta[0])
    with pytest.raises(LbpError, match="no separation found"):
        logistic_fit_firth(X, y2, max_iter=1)


def test_calibration_slope_of_a_perfect_ranking_is_firths_not_missing():
    """A prediction that ranks every event above every non-event: the ML calibration slope is infinite
    (before: NaN); now Firth's finite slope, with its bootstrap interval."""
    rng = np.random.default_rng(3)
    pred = np.sort(rng.uniform(0.05, 0.95, 60))
    y = (np.arange(60) >= 30).astype(float)
    r = outcome_performance(y, pred, outcome_type="binary", n_boot=20, random_state=1)
    lp = np.log(pred / (1 - pred))
    ref = firth(np.column_stack([np.ones(60), lp]), y).beta[1]
    assert np.isfinite(r.slope) and r.slope == pytest.approx(ref, rel=1e-8) and r.slope > 1


def test_update_recalibration_under_separation_reports_profile_intervals():
    from training.validate.update import _outcome_recal  # noqa: PLC2701 - the unit under test
    from training.validate.data import TaskData

    rng = np.random.default_rng(5)
    p = np.sort(rng.uniform(0.1, 0.9, 40))
    y = (np.arange(40) >= 20).astype(float)
    td = TaskData("t", "o", "w", "binary", np.zeros(40), np.array(["c"] * 40), np.ones(40), y, np.full(40, np.nan), p)
    out = _outcome_recal(td)
    X = np.column_stack([np.ones(40), np.log(p / (1 - p))])
    f = firth(X, y)
    lo, hi, _ = profile_ci(X, y, f, 1)
    assert "Firth" in out["method"] and out["b"]["estimate"] == pytest.approx(f.beta[1])
    assert (out["b"]["ci_low"], out["b"]["ci_high"]) == pytest.approx((lo, hi))
    assert out["b"]["ci_high"] - out["b"]["estimate"] > out["b"]["estimate"] - out["b"]["ci_low"]  # asymmetric
