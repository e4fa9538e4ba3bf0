"""ML-NMR (training/network/mlnmr*.py): integration points, the Bayesian NMA against the
frequentist one (metafor-checked), known truth, and loud convergence failures.

Kept small: JAX compiles each model once per test (a few seconds); the multinma plaque-psoriasis
comparison and the many-seed coverage run are in benchmarks/bench_mlnmr*.py."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from predict.errors import LbpError
from training.network.mlnmr_data import build_network, copula_correlation, quantile, sobol_normals

SENN = str(resources.files("training.network").joinpath("examples/senn2013_arms.csv"))


def test_integration_points_reproduce_margins_and_correlation():
    R = np.array([[1.0, 0.5], [0.5, 1.0]])
    U = sobol_normals(1024, R, seed=3)
    x = quantile("gamma", U[:, 0], 18.0, 12.0)
    assert x.mean() == pytest.approx(18.0, rel=0.01) and x.std() == pytest.approx(12.0, rel=0.03)
    b = quantile("bernoulli", U[:, 1], 0.3)
    assert b.mean() == pytest.approx(0.3, abs=0.002)
    ln = quantile("logitnormal", U[:, 0], 0.3, 0.15)
    assert ln.mean() == pytest.approx(0.3, abs=0.003) and ln.std() == pytest.approx(0.15, rel=0.03)
    n = quantile("normal", U[:, 1], 50.0, 10.0)
    from scipy.stats import spearmanr
    assert spearmanr(x, n)[0] == pytest.approx(6 / np.pi * np.arcsin(0.5 / 2), abs=0.03)
    with pytest.raises(LbpError, match="impossible"):
        quantile("logitnormal", U[:, 0], 0.5, 0.6)


def test_copula_correlation_from_ipd_spearman():
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=4000)
    ipd = pd.DataFrame({"trial": np.repeat(["a", "b"], 2000), "x1": np.exp(z[:, 0]), "x2": z[:, 1]})
    R = copula_correlation(ipd, ["x1", "x2"])
    assert R[0, 1] == pytest.approx(0.6, abs=0.03)  # rank correlation is invariant to exp()


def test_aggregate_input_errors_name_trial_and_column():
    agd = pd.DataFrame({"trial": ["t1", "t1", "t2", "t2"], "treatment": ["a", "b", "a", "c"], "n": [10, 10, 12, 12],
                        "mean": [1.0, 2.0, 1.5, 0.5], "sd": [1.0, 1.0, 1.0, 1.0],
                        "age_mean": [40, np.nan, np.nan, np.nan], "age_sd": [10, 10, 10, 10]})
    with pytest.raises(LbpError, match="trial t2 has no 'age_mean'"):
        build_network(None, agd, covariates=["age"])
    agd["age_mean"] = agd["age_mean"].fillna(42.0)
    nd = build_network(None, agd, covariates=["age"], reference="a", n_int=32)
    assert nd.agd_X.shape == (4, 32, 1) and nd.agd_X[1, :, 0].mean() == pytest.approx(42.0, abs=0.2)
    assert nd.study_base.tolist() == [0, 0]
    with pytest.raises(LbpError, match="sd \\(or se\\)"):
        build_network(None, agd.drop(columns=["sd"]))


@pytest.fixture(scope="module")
def senn_fe():
    from training.network.mlnmr import Priors, fit_mlnmr

    agd = pd.read_csv(SENN)
    nd = build_network(None, agd, reference="placebo")
    return fit_mlnmr(nd, effects="fixed", priors=Priors(intercept=100, trt=100), num_warmup=300, num_samples=1000,
                     num_chains=2, seed=1, dense_mass=True)


def test_bayesian_fixed_effect_nma_matches_frequentist(senn_fe):
    """Aggregate data only, vague priors: posterior mean and SD = the common-effect GLS estimate and
    SE (training.network.nma.fit_nma, itself equal to metafor to 5 digits) within Monte Carlo error."""
    from training.network.data import load_aggregate
    from training.network.nma import fit_nma

    ref = fit_nma(load_aggregate(SENN), reference="placebo", method="fixed")
    d = senn_fe.d()
    assert senn_fe.diagnostics["ok"], senn_fe.diagnostics["problems"]
    for j, t in enumerate(senn_fe.data.treatments[1:], start=1):
        ess = senn_fe.diagnostics["by_parameter"][f"d[{t}]"]["ess_bulk"]
        se = float(np.sqrt(ref.vcov.loc[t, t]))
        mcse = d[:, j].std() / np.sqrt(ess)
        assert abs(d[:, j].mean() - ref.d[t]) < 4 * mcse + 0.01 * se, t
        assert d[:, j].std() == pytest.approx(se, rel=0.15), t


def test_bad_sampling_fails_loudly():
    from training.network.mlnmr import ConvergenceError, fit_mlnmr

    agd = pd.read_csv(SENN)
    nd = build_network(None, agd, reference="placebo")
    with pytest.raises(ConvergenceError, match="did not converge") as e:
        fit_mlnmr(nd, effects="random", num_warmup=3, num_samples=12, num_chains=2, seed=0)
    assert e.value.diagnostics["problems"]


def test_export_payload_scores_from_posterior_draws(senn_fe):
    """The exported network file passes the runtime's check; the runtime's intervals are the
    quantiles of the stored draws (CrI) and of draws + tau * z_new (PrI; fixed effects: tau = 0)."""
    from predict import network as netrt
    from predict import network_posterior as netpost
    from training.network.mlnmr_export import scoring_payload

    net = scoring_payload(senn_fe, "hba1c", "short", {}, n_draws=200)
    assert netrt.check(net, [], [], "placebo") is None
    # nothing time-dependent in a model file (identical builds, identical model id)
    assert "seconds" in senn_fe.diagnostics and "seconds" not in net["mlnmr"]["diagnostics"]
    assert net == scoring_payload(senn_fe, "hba1c", "short", {}, n_draws=200)
    node = "metformin"
    est, se, ci, pi = netpost.intervals_exact(net, node, np.zeros((2, 0)), np.zeros(2), 1.959963984540054)
    j = net["posterior"]["terms"].index(f"node[{node}]")
    draws = np.array(net["posterior"]["draws"])[:, j]
    assert est[0] == pytest.approx(draws.mean()) and se[0] == pytest.approx(draws.std(ddof=1))
    assert ci[0][0] == pytest.approx(np.quantile(draws, 0.025)) and ci[1][1] == pytest.approx(np.quantile(draws, 0.975))
    assert pi[0][0] == pytest.approx(ci[0][0])  # fixed effects
    # the scorer's path: posterior mean +- 1.96 posterior SD; fixed effects: PrI = CrI
    e2, s2, ci2, pi2 = netpost.intervals(net, node, np.zeros((2, 0)), np.zeros(2), 1.959963984540054)
    assert e2[0] == pytest.approx(est[0]) and s2[0] == pytest.approx(se[0])
    assert ci2[0][0] == pytest.approx(est[0] - 1.959963984540054 * se[0]) and pi2[1][0] == pytest.approx(ci2[1][0])
    # near-normal posterior: the normal CrI limit and the 2.5% quantile of the 200 stored draws agree
    # within 3 Monte Carlo SEs of that quantile (sqrt(p(1 - p) / n) / phi(z) posterior SDs = 0.19 SD)
    mcse_q = np.sqrt(0.025 * 0.975 / len(draws)) / 0.05844 * se[0]
    assert abs(ci2[0][0] - ci[0][0]) < 3 * mcse_q
    assert net["evidence"][node]["source"] == "direct (aggregate only)"
    bad = dict(net, posterior=dict(net["posterior"], tau=[1.0]))
    assert "inconsistent shapes" in netrt.check(bad, [], [], "placebo")


def test_continuous_ipd_sufficient_statistics_likelihood_is_exact():
    """The IPD likelihood from per-arm sufficient statistics equals the row-wise Gaussian one."""
    from numpyro.infer.util import log_density
    from scipy import stats

    from training.network.mlnmr import Priors, _jax, make_model

    _jax()
    rng = np.random.default_rng(5)
    n = 60
    ipd = pd.DataFrame({"trial": np.repeat(["t1", "t2"], n // 2), "treatment": np.tile(["a", "b", "c"], n // 3),
                        "x": rng.normal(40, 10, n), "y": rng.normal(50, 15, n)})
    nd = build_network(ipd, None, outcome="y", covariates=["x"], reference="a", classes={"b": "k", "c": "k"})
    pr = Priors()
    model, A = make_model(nd, "fixed", "identity", pr, "consistency", "bernoulli2")
    sc = float(A["scale"][0])  # coefficients are sampled per standardised covariate
    par = {"mu": np.array([48.0, 52.0]), "d": np.array([-3.0, 2.0]), "beta": np.array([0.4 * sc]),
           "gamma": np.array([[-0.2 * sc]]), "sigma": np.array([14.0, 16.0])}
    lp, _ = log_density(model, (), {}, par)
    slope = {0: 0.4, 1: 0.2, 2: 0.2}
    d = {0: 0.0, 1: -3.0, 2: 2.0}
    xc = ipd["x"].to_numpy() - nd.centre[0]
    t = ipd["treatment"].map({"a": 0, "b": 1, "c": 2}).to_numpy()
    s = (ipd["trial"] == "t2").to_numpy().astype(int)
    eta = par["mu"][s] + np.array([d[k] for k in t]) + xc * np.array([slope[k] for k in t])
    manual = stats.norm.logpdf(ipd["y"], eta, par["sigma"][s]).sum() + stats.norm.logpdf(par["mu"], 0, pr.intercept).sum() \
        + stats.norm.logpdf(par["d"], 0, pr.trt).sum() + stats.norm.logpdf([0.4, -0.2], 0, pr.reg).sum() \
        + stats.halfnorm.logpdf(par["sigma"], scale=pr.aux).sum() - 2 * np.log(sc)  # Jacobian of the rescaling
    assert float(lp) == pytest.approx(manual, rel=1e-10)


def test_cli_network_nma_bayesian_writes_report_and_fails_loudly_when_not_converged(tmp_path, capsys):
    """`network --method nma-bayesian` writes the Bayesian report; with far too few draws the
    diagnostics fail, the report says NOT CONVERGED and the command exits non-zero."""
    from lbp_benefit.cli import main

    out = tmp_path / "o"
    try:
        main(["network", "--method", "nma-bayesian", "--aggregate", SENN, "--reference", "placebo", "--samples", "50",
              "--chains", "1", "--no-checks", "--out", str(out)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0 and "diagnostics failed" in err
    html = (out / "report.html").read_text("utf-8")
    assert "NOT CONVERGED" in html and "SUCRA" in html.upper()
    rank = pd.read_csv(out / "ranking.csv")
    assert len(rank) == 10 and rank["sucra"].between(0, 1).all()
    ev = pd.read_csv(out / "evidence.csv")
    assert set(ev["evidence"]) <= {"direct (aggregate only)", "indirect only"}
