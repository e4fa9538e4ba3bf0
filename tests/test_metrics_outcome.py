"""Outcome performance: calibration-in-the-large, slope, R^2, C-statistic (DeLong), Brier,
smoothed calibration curve."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import roc_auc_score

from predict.errors import LbpError
from training.metrics import c_statistic, calibration_curve, delong_se, outcome_performance
from training.metrics._stats import loess


def test_continuous_known_answers():
    rng = np.random.default_rng(0)
    y = rng.normal(50, 10, 200)
    r = outcome_performance(y, y, outcome_type="continuous", n_boot=20)
    assert (r.citl, r.slope, r.r2) == pytest.approx((0, 1, 1), abs=1e-12)
    r = outcome_performance(y, y + 1, outcome_type="continuous", n_boot=20)  # predictions 1 point too high
    assert r.citl == pytest.approx(-1) and r.slope == pytest.approx(1)
    assert r.r2 == pytest.approx(1 - 1 / np.var(y), rel=1e-10)
    m = y.mean()
    r = outcome_performance(y, m + 2 * (y - m), outcome_type="continuous", n_boot=20)  # over-spread predictions
    assert r.slope == pytest.approx(0.5) and r.citl == pytest.approx(0, abs=1e-9)
    assert r.c_statistic is None and r.brier is None
    json.dumps(r.to_dict())


def test_continuous_bootstrap_ci_and_clusters():
    rng = np.random.default_rng(1)
    n = 600
    cl = rng.integers(0, 5, n)
    pred = rng.normal(50, 8, n)
    y = pred + rng.normal(0, 8, n)
    r = outcome_performance(y, pred, outcome_type="continuous", cluster=cl, n_boot=100)
    assert r.n_clusters == 5
    assert r.citl_ci_low < 0 < r.citl_ci_high and r.slope_ci_low < 1 < r.slope_ci_high
    assert 0 < r.r2_ci_low < r.r2 < r.r2_ci_high < 1


def test_binary_exact_citl_and_brier():
    # constant prediction p with observed prevalence m: citl = logit(m) - logit(p)
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1], float)  # m = 0.3
    pred = np.full(10, 0.5)
    r = outcome_performance(y, pred, outcome_type="binary", n_boot=0)
    assert r.citl == pytest.approx(np.log(0.3 / 0.7) - 0.0, abs=1e-9)
    assert np.isnan(r.slope)  # constant predictions: slope undefined, reported as NaN
    assert r.to_dict()["slope"] is None
    assert r.brier == pytest.approx(np.mean((y - pred) ** 2))
    assert r.r2 is None


def test_binary_slope_and_c_statistic_simulated():
    rng = np.random.default_rng(2)
    n = 5000
    lp = rng.normal(-0.5, 1.2, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(float)
    good = outcome_performance(y, 1 / (1 + np.exp(-lp)), outcome_type="binary", n_boot=50)
    assert abs(good.slope - 1) < 0.1 and abs(good.citl) < 0.1
    assert good.c_statistic == pytest.approx(roc_auc_score(y, lp), abs=1e-12)
    assert good.c_statistic_ci_method == "delong"
    assert good.c_statistic_ci_low < good.c_statistic < good.c_statistic_ci_high
    over = outcome_performance(y, 1 / (1 + np.exp(-2 * lp)), outcome_type="binary", n_boot=0)
    assert abs(over.slope - 0.5) < 0.05  # overfitted predictions: slope 1/2
    assert over.c_statistic == pytest.approx(good.c_statistic)  # same ranking


def test_c_statistic_hand_and_delong_brute_force():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.4, 0.6, 0.3, 0.2, 0.5])
    # 3 cases x 4 noncases = 12 pairs; 0.9 beats all 4; 0.6 beats 3 ties 1; 0.4 beats 2
    assert c_statistic(y, s) == pytest.approx((4 + 3.5 + 2) / 12)
    cases, non = s[y == 1], s[y == 0]
    psi = np.array([[1.0 if a > b else 0.5 if a == b else 0.0 for b in non] for a in cases])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = np.sqrt(v10.var(ddof=1) / cases.size + v01.var(ddof=1) / non.size)
    assert delong_se(y, s) == pytest.approx(se, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-30, 30)), min_size=4, max_size=50))
def test_c_statistic_invariant_to_monotone_transform(rows):
    y = np.array([a for a, _ in rows])
    s = np.array([b for _, b in rows]) / 10.0
    if y.min() == y.max():
        return
    assert c_statistic(y, np.exp(s)) == pytest.approx(c_statistic(y, s), abs=1e-12)
    assert c_statistic(y, -s) == pytest.approx(1 - c_statistic(y, s), abs=1e-12)


def test_binary_clustered_uses_bootstrap_for_c():
    rng = np.random.default_rng(3)
    n = 800
    cl = rng.integers(0, 4, n)
    p = rng.uniform(0.1, 0.9, n)
    y = (rng.uniform(size=n) < p).astype(float)
    r = outcome_performance(y, p, outcome_type="binary", cluster=cl, n_boot=60)
    assert r.c_statistic_ci_method == "bootstrap"
    assert r.c_statistic_ci_low < r.c_statistic < r.c_statistic_ci_high
    assert r.brier_ci_low < r.brier < r.brier_ci_high


def test_outcome_errors():
    with pytest.raises(LbpError, match="0/1"):
        outcome_performance([0, 1, 2], [0.1, 0.2, 0.3], outcome_type="binary")
    with pytest.raises(LbpError, match="probabilities"):
        outcome_performance([0, 1, 1], [0.1, 1.2, 0.3], outcome_type="binary")
    with pytest.raises(LbpError, match="length mismatch"):
        outcome_performance([0, 1, 1], [0.1, 0.2], outcome_type="continuous")
    with pytest.raises(LbpError, match="missing"):
        outcome_performance([0, np.nan, 1], [0.1, 0.2, 0.3], outcome_type="continuous")
    with pytest.raises(LbpError, match="single class"):
        outcome_performance([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], outcome_type="binary")


def test_loess_matches_statsmodels_lowess_and_reproduces_quadratics():
    from statsmodels.nonparametric.smoothers_lowess import lowess

    rng = np.random.default_rng(4)
    x = rng.uniform(0, 10, 300)
    y = np.sin(x) + rng.normal(0, 0.3, 300)
    ours = loess(x, y, span=2 / 3, degree=1)
    ref = lowess(y, x, frac=2 / 3, it=0, return_sorted=False)
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    q = 3 + 2 * x - 0.5 * x**2
    np.testing.assert_allclose(loess(x, q, span=0.3, degree=2), q, atol=1e-8)


def test_calibration_curve_known_answers():
    rng = np.random.default_rng(5)
    pred = rng.uniform(20, 80, 300)
    r = calibration_curve(pred, pred, outcome_type="continuous", n_boot=20)  # perfectly calibrated, noiseless
    np.testing.assert_allclose(r.observed, r.grid, atol=1e-8)
    assert r.ici == pytest.approx(0, abs=1e-8)
    y = 10 + 0.8 * pred  # linear miscalibration: smoother recovers it exactly
    r = calibration_curve(y, pred, outcome_type="continuous", n_boot=20)
    np.testing.assert_allclose(r.observed, 10 + 0.8 * r.grid, atol=1e-8)
    assert r.ici == pytest.approx(np.mean(np.abs(10 - 0.2 * pred)), rel=1e-8)
    noisy = calibration_curve(pred + rng.normal(0, 5, 300), pred, outcome_type="continuous",
                              n_boot=40, n_grid=20)
    inside = (noisy.ci_low <= noisy.grid) & (noisy.grid <= noisy.ci_high)
    assert inside.mean() > 0.8 and (noisy.ci_high > noisy.ci_low).all()
    yb = (rng.uniform(size=300) < (pred - 20) / 60).astype(float)
    rb = calibration_curve(yb, (pred - 20) / 60, outcome_type="binary", n_boot=20)
    assert rb.ici < 0.1
