"""The identity-link ML-NMR with trial intercepts and random effects integrated out
(training/network/mlnmr_gauss.py): its likelihood is the exact marginal of the row-wise model,
checked against one dense multivariate normal of every observation; the intercepts and random
effects drawn afterwards follow their exact conditional posterior. Small fixtures, no sampling."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from training.network.mlnmr_data import build_network


X_MEAN = [42.0, 41.0, 38.0, 39.0, 38.5]  # aggregate arms' reported covariate means


def _network():
    rng = np.random.default_rng(11)
    rows = []
    for trial, trts, n in (("i1", ["a", "b"], 14), ("i2", ["a", "b", "c"], 9)):
        for t in trts:
            x = rng.normal(40, 10, n)
            rows += [{"trial": trial, "treatment": t, "x": xi, "y": 50 + 0.3 * xi + rng.normal(0, 12)} for xi in x]
    ipd = pd.DataFrame(rows)
    agd = pd.DataFrame({"trial": ["g1", "g1", "g2", "g2", "g2"], "treatment": ["a", "c", "b", "c", "a"],
                        "n": [30, 31, 20, 22, 21], "mean": [61.0, 58.0, 60.5, 57.0, 63.0], "sd": [14.0, 15, 13, 12, 14],
                        "x_mean": X_MEAN, "x_sd": [9.0, 10.0, 11.0, 10.0, 9.5]})
    return build_network(ipd, agd, outcome="y", covariates=["x"], reference="a", classes={"b": "k", "c": "k"},
                         n_int=16)


def _dense_marginal(nd, d, beta, gam, sigma, tau, s_mu):
    """log N(all observations | fixed part, s_mu^2 (same trial) + tau^2 Sigma_delta + residual):
    IPD rows one by one, aggregate arms as their means at the reported covariate means (the
    identity link's exact integral); no sufficient statistics."""
    slope = {0: beta, 1: beta + gam, 2: beta + gam}
    y, mean, trial, arm, resid = [], [], [], [], []
    for r in range(len(nd.ipd_y)):
        a = nd.ipd_arm[r]
        k, b = nd.arm_trt[a], nd.arm_trt[nd.arm_base[a]]
        y.append(nd.ipd_y[r])
        mean.append(d[k] - d[b] + (nd.ipd_X[r, 0] - nd.centre[0]) * slope[k])
        trial.append(nd.arm_study[a]); arm.append(a)
        resid.append(sigma[nd.ipd_studies.index(nd.studies[nd.arm_study[a]])] ** 2)
    for i, a in enumerate(nd.agd_arm):
        k, b = nd.arm_trt[a], nd.arm_trt[nd.arm_base[a]]
        y.append(nd.agd_y[i])
        mean.append(d[k] - d[b] + (X_MEAN[i] - nd.centre[0]) * slope[k])
        trial.append(nd.arm_study[a]); arm.append(a); resid.append(nd.agd_se[i] ** 2)
    trial, arm = np.array(trial), np.array(arm)
    nb = np.array([arm_ != nd.arm_base[arm_] for arm_ in arm])
    same_t = trial[:, None] == trial[None, :]
    same_a = arm[:, None] == arm[None, :]
    cov = s_mu ** 2 * same_t + tau ** 2 * same_t * (nb[:, None] & nb[None, :]) * np.where(same_a, 1.0, 0.5)
    cov = cov + np.diag(resid)
    return stats.multivariate_normal.logpdf(y, mean, cov)


@pytest.mark.parametrize("tau", [0.0, 3.0])
def test_marginal_likelihood_equals_dense_multivariate_normal(tau):
    from numpyro.infer.util import log_density

    from training.network.mlnmr import Priors, _jax, make_model

    _jax()
    nd = _network()
    pr = Priors(intercept=20.0)
    model, A = make_model(nd, "random" if tau else "fixed", "identity", pr, "consistency", "bernoulli2", marginal=True)
    sc = float(A["scale"][0])
    d = np.array([0.0, -2.0, 1.5])
    beta, gam = 0.3, -0.1
    sigma = np.array([12.0, 13.5])
    pad = np.full(6, 9.0)  # the sampler pads the IPD trials' residual SDs to 8 (prior only, no data)
    par = {"d": d[1:], "beta": np.array([beta * sc]), "gamma": np.array([[gam * sc]]), "sigma": np.r_[sigma, pad]}
    if tau:
        par["tau"] = np.array(tau)
    lp, _ = log_density(model, (), {}, par)
    prior = stats.norm.logpdf(d[1:], 0, pr.trt).sum() + stats.norm.logpdf([beta, gam], 0, pr.reg).sum() \
        + stats.halfnorm.logpdf(np.r_[sigma, pad], scale=pr.aux).sum() - 2 * np.log(sc) \
        + (stats.halfnorm.logpdf(tau, scale=pr.het) if tau else 0.0)
    assert float(lp) == pytest.approx(_dense_marginal(nd, d, beta, gam, sigma, tau, pr.intercept) + prior, rel=1e-9)


def test_conditional_draws_match_the_gaussian_posterior():
    """Intercepts and random effects: the draws' mean and covariance equal the precision-form
    posterior (P^-1 + V^-1)^-1 computed independently, per trial."""
    from training.network.mlnmr_gauss import arm_statistics, conditional_draws

    nd = _network()
    st = arm_statistics(nd, np.ones(1))
    S, narm = 40000, len(nd.arm_trt)
    rel = np.zeros((S, narm))
    slope = np.zeros((S, narm, 1))
    sigma = np.full((S, 2), 12.0)
    tau, s_mu = 3.0, 20.0
    mu, delta = conditional_draws(st, rel, slope, sigma, np.full(S, tau), s_mu, seed=3)
    for s in range(len(nd.studies)):
        arms = np.flatnonzero(nd.arm_study == s)
        base = nd.arm_base[arms[0]]
        nb = [a for a in arms if a != base]
        # parameters (mu, delta of non-baseline arms); arm intercept = mu + delta
        H = np.column_stack([np.ones(len(arms))] + [(arms == a).astype(float) for a in nb])
        prior = np.diag([s_mu ** 2] + [tau ** 2] * len(nb))
        prior[1:, 1:] = tau ** 2 * (0.5 + 0.5 * np.eye(len(nb)))
        v = np.where(st["is_ipd"][arms], 144.0 / st["n"][arms], st["agd_var"][arms])
        r = st["m"][arms] - st["xbar"][arms, 0] * 0.0
        prec = np.linalg.inv(prior) + H.T @ np.diag(1 / v) @ H
        cov = np.linalg.inv(prec)
        mean = cov @ H.T @ (r / v)
        got = np.column_stack([mu[:, s]] + [delta[:, a] for a in nb])
        se = np.sqrt(np.diag(cov) / S)
        assert np.all(np.abs(got.mean(0) - mean) < 5 * se), s
        assert np.allclose(np.cov(got, rowvar=False), cov, rtol=0.05, atol=0.02 * cov.max())
        assert np.all(delta[:, base] == 0.0)


def test_one_compile_serves_networks_of_the_same_structure():
    """Two networks with different data but the same structure (treatments, covariates, padded
    sizes) share one compiled sampler; the second fit's estimates are its own (not the first's)."""
    from training.network.mlnmr import fit_mlnmr

    nd1 = _network()
    nd2 = _network()
    nd2.agd_y = nd2.agd_y + np.array([0.0, -6.0, 0.0, -6.0, 0.0])  # c arms 6 points lower (c vs a: -6 more)
    kw = dict(effects="fixed", num_warmup=150, num_samples=150, num_chains=1, seed=2, check=False)
    f1 = fit_mlnmr(nd1, **kw)
    f2 = fit_mlnmr(nd2, **kw)
    assert f1.diagnostics["compiled"] and not f2.diagnostics["compiled"]
    shift = f2.d()[:, 2].mean() - f1.d()[:, 2].mean()
    assert -6.0 < shift < -1.0
    assert f1.flat("sigma").shape[1] == 2 and f1.flat("mu").shape[1] == 4


def test_compiled_chains_agree_with_numpyros_mcmc_and_extend():
    """training.network.mlnmr_nuts (Laplace start and metric, one compiled loop for every chain)
    gives the posterior NumPyro's own MCMC gives (default start and windowed adaptation) within
    Monte Carlo error; an extension continues each chain from its last state, so its first block
    is the unextended fit's and the chains run on; fit_mlnmr extends only while R-hat / ESS miss
    the thresholds, up to max_samples per chain."""
    import jax.numpy as jnp

    from training.network.mlnmr import Priors, Thresholds, _arrays, _jax, _mcmc, fit_mlnmr
    from training.network.mlnmr_gauss import arm_statistics
    from training.network.mlnmr_marginal import model_for

    _jax()
    nd = _network()
    A = _arrays(nd, "consistency")
    A["gauss"] = arm_statistics(nd, A["scale"])
    model, a = model_for(nd, A, "random", "consistency", Priors())
    ref, div, _ = _mcmc(model, ({k: jnp.asarray(v) for k, v in a.items()},), 400, 2000, 1, "sequential", 4, 0.9, True)
    kw = dict(effects="random", num_warmup=300, num_samples=500, num_chains=2, seed=4, dense_mass=True)
    fit = fit_mlnmr(nd, check=False, **kw)
    assert fit.diagnostics["divergences"] == 0 and int(div.sum()) == 0
    for k in ("d", "beta", "gamma"):
        ours = fit.draws[k].reshape(-1, fit.draws[k][0, 0].size)
        theirs = ref[k].reshape(-1, ours.shape[1]) / (A["scale"] if k in ("beta", "gamma") else 1.0)
        se = np.sqrt(ours.var(0) / 500 + theirs.var(0) / 500)  # ESS ~ a quarter of the draws or more
        assert np.all(np.abs(ours.mean(0) - theirs.mean(0)) < 4 * se), k
        assert np.allclose(ours.std(0), theirs.std(0), rtol=0.2), k
    # extension: first block unchanged, the chains continue; only while R-hat / ESS miss the thresholds
    f1 = fit_mlnmr(nd, thresholds=Thresholds(ess_bulk=1e9), max_samples=1500, check=False, **kw)
    assert fit.diagnostics["extensions"] == 0 and fit.diagnostics["samples"] == 500
    assert f1.diagnostics["extensions"] == 2 and f1.diagnostics["samples"] == 1500 and not f1.diagnostics["ok"]
    np.testing.assert_allclose(f1.draws["d"][:, :500], fit.draws["d"], rtol=1e-12)
    assert abs(f1.draws["d"][:, 500:].mean() - fit.draws["d"].mean()) < 1.0  # the same chains, run on
    f2 = fit_mlnmr(nd, thresholds=Thresholds(rhat=10.0, ess_bulk=1.0, ess_tail=1.0), max_samples=1500, **kw)
    assert f2.diagnostics["extensions"] == 0 and f2.diagnostics["ok"]
