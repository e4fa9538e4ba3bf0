"""The scorer's ML-NMR intervals (predict/network_posterior.intervals: posterior moments and a
τ mixture for the predictive interval) against the quantiles of the draws themselves
(intervals_exact) on a posterior with many draws, and the mixture quantile against direct
numerical integration. numpy only; no model fitting."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from predict import network_posterior as netpost


def _net(S: int, seed: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    terms = ["node[p]", "node[p]:age_c", "node[p]:baseline_pain_c"]
    cov = np.array([[1.0, 0.02, -0.01], [0.02, 0.004, 0.0], [-0.01, 0.0, 0.002]])
    X = rng.multivariate_normal([3.0, 0.1, -0.05], cov, size=S)
    tau = rng.gamma(2.0, 1.5, size=S)  # skewed, as a posterior of tau is
    model = {"terms": terms, "coef": X.mean(0).tolist(), "vcov": np.cov(X, rowvar=False).tolist(), "tau": 2.0,
             "modifiers": ["age", "baseline_pain"], "centres": {"age": 45.0, "baseline_pain": 55.0},
             "interaction": "node", "reference": "exercise"}
    model["exercise_content"] = {"exercise": 1.0, "p": 0.0}
    return {"nodes": ["p"], "reference": "exercise", "model": model,
            "posterior": {"terms": terms, "draws": X.tolist(), "tau": tau.tolist(),
                          "z_new": rng.standard_normal(S).tolist(), "n_draws": S}}


def test_moment_and_mixture_intervals_equal_the_draws_quantiles():
    net = _net(40000)
    rng = np.random.default_rng(1)
    Z = np.column_stack([rng.normal(45, 12, 50), rng.normal(55, 15, 50)])
    vm = np.where(np.arange(50) % 3 == 0, 6.0, 0.0)
    est, se, ci, pi = netpost.intervals(net, "p", Z, vm, 1.959963984540054)
    e2, s2, ci2, pi2 = netpost.intervals_exact(net, "p", Z, vm, 1.959963984540054)
    assert np.allclose(est, e2, atol=1e-9) and np.allclose(se, s2, atol=1e-9)
    # Monte Carlo error of a 2.5% quantile from 40,000 draws: ~0.02 x SD; tau's gamma posterior
    # makes the predictive tails far from one normal's, and the mixture follows them
    assert np.abs(ci[0] - ci2[0]).max() < 0.03 * se.max() + 0.02 and np.abs(ci[1] - ci2[1]).max() < 0.03 * se.max() + 0.02
    assert np.abs(pi[0] - pi2[0]).max() < 0.16 and np.abs(pi[1] - pi2[1]).max() < 0.16  # ~3 MC SEs
    normal_pi = est + 1.959963984540054 * np.sqrt(se ** 2 + np.mean(np.square(net["posterior"]["tau"])))
    assert np.abs(normal_pi - pi2[1]).max() > 0.3  # a moment-matched normal would not do


def test_mixture_quantile_equals_numerical_integration_and_grid_equals_direct():
    tk = np.quantile(np.random.default_rng(2).gamma(2.0, 1.5, 4000), (np.arange(32) + 0.5) / 32)
    sd = np.array([0.0, 0.7, 2.5, 9.0, 75.0])
    q = netpost._mixture_quantile(sd, tk, 0.975)
    for s, x in zip(sd, q):
        scales = np.sqrt(s ** 2 + tk ** 2)
        cdf = integrate.quad(lambda v: np.mean(stats.norm.pdf(v, 0, scales)), -np.inf, x)[0]
        assert cdf == pytest.approx(0.975, abs=3e-5)  # grid interpolation (< 2e-3 points) below SD_MAX
    grid_sd = np.linspace(0.0, 60.0, 997)
    assert np.abs(netpost._mixture_quantile(grid_sd, tk, 0.975) - netpost._newton(grid_sd, tk, 0.975)).max() < 2e-3
