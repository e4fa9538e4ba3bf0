"""The new-setting PI's between-trial tau (training.learners.intervals): the posterior mean of
tau^2 under a half-normal prior, checked against an independent two-dimensional integration of
the full likelihood, and against known truth on simulated deviations."""
import numpy as np
import pytest
from scipy import integrate, stats

from training.learners.intervals import posterior_tau2, tau_from_deviations
from training.metrics import pool_random_effects


def _posterior_tau2_by_quadrature(e, s, scale):
    """E[tau^2 | e] with mu ~ flat and tau ~ half-normal(scale), integrating the full normal
    likelihood over a dense (mu, tau) grid (no restricted-likelihood algebra)."""
    e, s = np.asarray(e, float), np.asarray(s, float)
    t = np.linspace(0.0, 8 * scale, 801)[:, None, None]
    mu = np.linspace(e.mean() - 40.0, e.mean() + 40.0, 1601)[None, :, None]
    ll = stats.norm.logpdf(e[None, None, :], mu, np.sqrt(s ** 2 + t ** 2)).sum(-1) \
        + stats.halfnorm.logpdf(t[:, :, 0], scale=scale)
    w = np.exp(ll - ll.max())
    marg = integrate.trapezoid(w, mu[0, :, 0], axis=1)        # over mu
    tt = t[:, 0, 0]
    return integrate.trapezoid(tt ** 2 * marg, tt) / integrate.trapezoid(marg, tt)


@pytest.mark.parametrize("e,s,scale", [
    ([1.0, 2.0, -1.0, 0.5, 3.0], [1.0, 1.0, 1.5, 2.0, 1.0], 1.0),
    ([0.2, 0.1, -0.1, 0.0], [2.0, 2.5, 1.5, 3.0], 3.5),      # REML tau is 0 here
])
def test_posterior_tau2_matches_independent_quadrature(e, s, scale):
    assert posterior_tau2(e, s, scale) == pytest.approx(_posterior_tau2_by_quadrature(e, s, scale), rel=2e-3)


def test_boundary_reml_zero_is_not_taken_at_face_value():
    e, s = [0.2, 0.1, -0.1, 0.0], [2.0, 2.5, 1.5, 3.0]
    assert pool_random_effects(e, s).tau == pytest.approx(0.0, abs=1e-6)
    t2 = posterior_tau2(e, s, 3.5)
    assert 0.5 < np.sqrt(t2) < 3.5          # above the boundary, below the prior's scale
    assert posterior_tau2(e, s, 0.0) == 0.0  # no heterogeneity anywhere: stays 0


def _devs(rng, k, tau, se, comparator):
    u = rng.normal(0.0, tau, k)
    return [{"trial": i, "comparator": comparator, "raw": float(u[i] + rng.normal(0, se)), "se": se}
            for i in range(k)]


def test_known_truth_many_trials_posterior_near_reml_and_truth():
    rng = np.random.default_rng(3)
    devs = _devs(rng, 60, 3.5, 2.0, "usual_care") + _devs(rng, 60, 3.5, 2.0, "other")
    post = tau_from_deviations(devs, ["usual_care", "other"], method="posterior")
    reml = tau_from_deviations(devs, ["usual_care", "other"], method="reml")
    for c in ("usual_care", "other"):
        assert abs(post[c] - reml[c]) < 0.35
        assert 2.6 < post[c] < 4.4
    assert post["__pooled__"] == reml["__pooled__"]


def test_methods_and_borrowing():
    rng = np.random.default_rng(5)
    devs = _devs(rng, 8, 3.0, 2.0, "a") + _devs(rng, 2, 3.0, 2.0, "b")
    out = tau_from_deviations(devs, ["a", "b"], method="posterior")
    assert out["b"] == out["__pooled__"]     # < 3 trials: the pooled REML tau, as before
    with pytest.raises(ValueError, match="tau method"):
        tau_from_deviations(devs, ["a", "b"], method="dl")
