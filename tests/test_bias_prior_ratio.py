"""The shrinkage-bias term of the linear learners' intervals under a prior other than the penalty's
(training.learners.linear.StructuredFit.shrinkage_cov with ``prior_ratio``) and the adaptive effect
model's ratio (training.learners.effect_model.bias_prior_ratio): the term is the exact covariance of the
ridge bias -A Lambda theta over theta ~ N(0, ratio x the penalty's prior variance), computed here from
noise-free refits; features the adaptive weights shrank below the common prior keep its allowance."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from training.learners.effect_model import EffectModel, bias_prior_ratio
from training.learners.linear import StructuredFit, trial_centre
from training.simulate.small_trials import small_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def test_shrinkage_cov_with_a_prior_ratio_is_the_exact_bias_covariance():
    rng = np.random.default_rng(5)
    n, J, k = 400, 4, 3
    trial = np.repeat(np.arange(J), n // J)
    treat = (rng.random(n) < 0.5).astype(float)
    cls = np.where(treat == 1, "exercise", "usual_care")
    P = rng.normal(size=(n, 2))
    Mw = trial_centre(rng.normal(size=(n, k)), trial)
    lam_int, sigma2 = 40.0, 9.0
    fit = StructuredFit("gaussian", 1e-8, lam_int, lam_offset=1e-8).fit(rng.normal(size=n), trial, cls, treat,
                                                                     ["usual_care"], P, Mw)
    ratio = np.array([1.0, 4.0, 0.25])
    # bias of the modifier coefficients for a true gamma (noise-free outcome) is linear in gamma: B gamma
    B = np.column_stack([StructuredFit("gaussian", 1e-8, lam_int, lam_offset=1e-8).fit(
        treat * Mw[:, j], trial, cls, treat, ["usual_care"], P, Mw).theta_[-k:] - np.eye(k)[j] for j in range(k)])
    prior = ratio * sigma2 / lam_int  # the penalty's prior variance sigma2 / lambda, times the ratio
    want = B @ np.diag(prior) @ B.T
    got = fit.shrinkage_cov(sigma2, ratio)[-k:, -k:]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    # no ratio = ratio 1 = the penalty's own prior (the term as before)
    np.testing.assert_allclose(fit.shrinkage_cov(sigma2), fit.shrinkage_cov(sigma2, np.ones(k)), rtol=1e-12)
    assert not np.allclose(got, fit.shrinkage_cov(sigma2)[-k:, -k:])


def test_bias_prior_ratio_floors_shrunk_features_at_the_common_prior():
    w = np.array([0.5, 0.0, 2.0, 1.0])  # column weights; the second column was dropped (w = 0)
    r = bias_prior_ratio(1.0, 0.5, w, 4)  # 3 kept columns + 1 trailing column
    # kept w 0.5, 2, 1 at sd 0.5: prior SDs 0.25, 1, 0.5 against the common 1 -> 16, 1, 4; the trailing column 1
    np.testing.assert_allclose(r, [16.0, 1.0, 4.0, 1.0])
    assert bias_prior_ratio(None, 0.5, w, 4) is None and bias_prior_ratio(1.0, 0.0, w, 4) is None


def test_adaptive_effect_model_interval_uses_the_common_prior_floor(monkeypatch):
    """effect_adaptive's theta_cov carries the ratio's larger bias term; the common-penalty effect model
    and the point predictions are untouched."""
    X, y, _ = small_trials(n_trials=12, n_per_arm=80, seed=4, noise=6.0, effect_mod=6.0)
    calls = []
    orig = StructuredFit.shrinkage_cov

    def spy(self, sigma2, prior_ratio=None):
        calls.append(prior_ratio)
        return orig(self, sigma2, prior_ratio)

    monkeypatch.setattr(StructuredFit, "shrinkage_cov", spy)
    ad = EffectModel(adaptive="always", n_boot=10, random_state=1).fit(X, y)
    assert ad.adaptive_weights_ is not None and calls[-1] is not None
    w = np.array([v for v in ad.adaptive_weights_.values()])
    assert ad.common_sd_ > 0 and np.all(calls[-1] >= 1.0) and calls[-1].size == ad.export_["linear"]["n_mod"]
    if (w[w > 0] * ad.interaction_sd_ < ad.common_sd_).any():
        assert calls[-1].max() > 1.0
    monkeypatch.setattr(StructuredFit, "shrinkage_cov", orig)
    plain = EffectModel(adaptive="always", n_boot=10, random_state=1, shrinkage_bias=False).fit(X, y)
    np.testing.assert_allclose(plain.theta_, ad.theta_, rtol=1e-12)
    calls.clear()
    monkeypatch.setattr(StructuredFit, "shrinkage_cov", spy)
    EffectModel(n_boot=10, random_state=1).fit(X, y)
    assert calls and calls[-1] is None
