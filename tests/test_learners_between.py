"""Within- and between-trial interactions of the effect model (training.learners.between): recovery
of a known within-trial slope and a known trial-level case-mix effect, the served slope per scoring,
the folding of theta and its covariance, and the default (within-trial only) unchanged."""
import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from training.learners import between as btw
from training.learners.effect_model import EffectModel

BW, BB = 2.0, 6.0  # benefit per 10 points of fear-avoidance: within trials, and per 10 points of the trial mean


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def _restore_class_attributes():
    yield
    EffectModel.between_sd, EffectModel.between_scoring = None, "reliability"


def case_mix_trials(seed: int, n_trials: int = 24, n: int = 80):
    """Exercise vs usual care; trial t's mean fear-avoidance mu_t spreads over 25-55; the benefit is
    8 + BW (x - mu_t) / 10 + BB (mu_t - 40) / 10 (a within-trial slope and a case-mix effect)."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(n_trials):
        mu = 25 + 30 * j / (n_trials - 1)
        alpha = rng.normal(30, 5)
        for a in ("exercise", "usual_care"):
            rows.append(pd.DataFrame({"trial": f"T{j:02d}", "treatment": a, "fear_avoidance": rng.normal(mu, 10, n),
                                      "baseline_pain": rng.normal(55, 15, n), "_a": alpha, "_mu": mu}))
    X = pd.concat(rows, ignore_index=True)
    f, mu = X["fear_avoidance"].to_numpy(), X["_mu"].to_numpy()
    benefit = 8 + BW * (f - mu) / 10 + BB * (mu - 40) / 10
    ex = (X["treatment"] == "exercise").to_numpy()
    y = X["_a"].to_numpy() + 0.5 * X["baseline_pain"].to_numpy() - ex * benefit + rng.normal(0, 8, len(X))
    return X.drop(columns=["_a", "_mu"]), y, f, mu


def fit(X, y, between=None, scoring="reliability"):
    EffectModel.between_sd, EffectModel.between_scoring = between, scoring
    return EffectModel(n_boot=20, splines=False, modifiers=["fear_avoidance"], interaction_sd=8.0).fit(X, y)


def served_slope(m, X, f):
    return np.polyfit(f, m.predict_benefit(X, "usual_care"), 1)[0] * 10


def test_default_is_within_only_and_ignores_the_case_mix_effect():
    X, y, f, mu = case_mix_trials(1)
    m = fit(X, y)
    assert m.between_ is None and "between" not in m.to_export()["meta"]
    assert served_slope(m, X, f) == pytest.approx(BW, abs=0.6)


def test_between_recovers_both_slopes_and_serves_them_by_scoring():
    X, y, f, mu = case_mix_trials(1)
    sd_f = f.std()  # the basis is standardised: coefficients per SD of fear-avoidance
    slopes = {}
    for scoring in ("average", "reliability", "own"):
        m = fit(X, y, between=1.0, scoring=scoring)
        rep = m.to_export()["meta"]["between"]
        # benefit = -gamma: the within and between slopes per SD, against the truth
        assert -rep["within"][0] == pytest.approx(BW / 10 * sd_f, abs=0.6)
        assert -rep["between"][0] == pytest.approx(BB / 10 * sd_f, abs=3 * rep["between_se"][0] + 0.3)
        slopes[scoring] = served_slope(m, X, f)
        if scoring == "reliability":
            rho = rep["rho"][0]
    # reliability: the OLS slope of a participant's trial mean on their own value
    assert rho == pytest.approx(np.polyfit(f, mu, 1)[0], abs=0.02)
    assert slopes["average"] == pytest.approx(BW, abs=0.6)
    assert slopes["own"] == pytest.approx(BW + BB, abs=1.2)
    assert slopes["average"] < slopes["reliability"] < slopes["own"]


def test_fold_maps_theta_and_covariance_linearly():
    rng = np.random.default_rng(0)
    k, n_base = 3, 7
    theta = rng.normal(size=n_base + k)
    L = rng.normal(size=(theta.size, theta.size))
    cov = L @ L.T
    rho, ratio = np.array([0.0, 0.5, 1.0]), 0.5
    A = btw.fold_matrix(n_base, k, rho, ratio)
    t = A @ theta
    np.testing.assert_allclose(t[:n_base - k], theta[:n_base - k])
    np.testing.assert_allclose(t[n_base - k:], theta[n_base - k:n_base] + rho * ratio * theta[n_base:])
    # the covariance of g = g_w + c g_b, entry by entry
    c = rho * ratio
    w, b = np.arange(n_base - k, n_base), np.arange(n_base, n_base + k)
    want = cov[np.ix_(w, w)] + c[:, None] * cov[np.ix_(b, w)] + cov[np.ix_(w, b)] * c[None, :] \
        + np.outer(c, c) * cov[np.ix_(b, b)]
    np.testing.assert_allclose((A @ cov @ A.T)[n_base - k:, n_base - k:], want)


def test_augmented_columns_and_reliability_edges():
    trial = np.repeat([0, 1, 2], 4)
    M = np.column_stack([np.arange(12.0), np.ones(12), np.repeat([1.0, 2.0, 6.0], 4)])
    A = btw.augmented(M, trial, 0.5)
    np.testing.assert_allclose(A[:, :3].reshape(3, 4, 3).sum(axis=1), 0.0, atol=1e-12)  # within: trial sums 0
    np.testing.assert_allclose(A[:4, 5], 0.5 * (1.0 - 3.0))  # between: ratio x (trial mean - pooled mean)
    np.testing.assert_allclose(btw.reliability(M, trial)[1:], [0.0, 1.0])  # constant column 0; trial-level 1
    with pytest.raises(ValueError, match="between_scoring"):
        btw.scoring_weights(M, trial, "setting")
