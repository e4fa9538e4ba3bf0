"""Class-effect shrinkage (training.learners.shrinkage): the empirical-Bayes algebra against an independent
DerSimonian-Laird fit (statsmodels), and against known truth on simulated trials with a sparse class."""
import numpy as np
import pandas as pd
import pytest

from training.learners.shrinkage import class_sets, shrink_offsets


def test_normal_normal_posterior_against_statsmodels_dl():
    from statsmodels.stats.meta_analysis import combine_effects

    comps = ["a", "b", "c", "d"]
    a = np.array([10.0, 12.5, 7.0, -3.0])
    v = np.array([1.0, 4.0, 9.0, 0.5])
    theta = np.concatenate([[50.0], a, [0.3, -0.2]])
    cov = np.diag(np.concatenate([[2.0], v, [0.01, 0.01]]))
    th, cv, rep = shrink_offsets(theta, cov, comps, [["a", "b", "c"], ["a", "b", "c", "d"]])
    ref = combine_effects(a[:3], v[:3], method_re="dl")
    mu, s2 = ref.mean_effect_re, ref.tau2
    assert s2 > 0
    w = s2 / (s2 + v[:3])
    np.testing.assert_allclose(th[1:4], mu + w * (a[:3] - mu), rtol=1e-10)
    assert th[0] == theta[0] and np.all(th[5:] == theta[5:])  # only the class offsets move
    # posterior variance of a class (mu fixed part): w v plus the uncertainty of mu
    pi = (1 / (v[:3] + s2)) / np.sum(1 / (v[:3] + s2))
    for i in range(3):
        row = (1 - w[i]) * pi
        row[i] += w[i]
        assert cv[1 + i, 1 + i] == pytest.approx(row @ np.diag(v[:3]) @ row + w[i] * (1 - w[i]) * v[i], rel=1e-10)
    assert rep["b"]["weight_own"] < rep["a"]["weight_own"]  # less information: pulled more
    assert rep["d"]["set"] == comps  # d is only in the larger set


def test_classes_in_no_shared_set_keep_their_estimate():
    theta = np.array([1.0, 5.0, -5.0])
    cov = np.diag([1.0, 2.0, 3.0])
    th, cv, rep = shrink_offsets(theta, cov, ["x", "y"], [["x"], ["y"]])
    np.testing.assert_array_equal(th, theta)
    np.testing.assert_array_equal(cv, cov)
    assert class_sets(["x", "y"], None) == [["x", "y"], ["x", "y"]]


def _trials(seed, effects, sizes):
    """Two-arm trials (exercise vs one class each), continuous outcome; true class effect = effects[c]
    plus a trial random effect (SD 3)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, (c, n) in enumerate(sizes):
        u = rng.normal(0, 3.0)
        x = rng.normal(size=2 * n)
        t = np.repeat([1, 0], n)
        y = 50 + rng.normal(0, 5) + 3 * x - t * (effects[c] + u) + rng.normal(0, 12, 2 * n)
        rows.append(pd.DataFrame({"trial": f"T{k}", "treatment": np.where(t == 1, "exercise", c), "x": x, "y": y}))
    return pd.concat(rows, ignore_index=True)


def test_sparse_class_error_falls_with_shrinkage_against_truth():
    from training.learners import ConstantEffect

    effects = {"no_treatment": 10.0, "placebo": 10.0, "usual_care": 10.0}
    sizes = [("no_treatment", 60)] * 4 + [("usual_care", 60)] * 4 + [("placebo", 15)]
    err = {False: [], True: []}
    for seed in range(12):
        d = _trials(seed, effects, sizes)
        for shrink in (False, True):
            m = ConstantEffect(features=["x"], n_boot=20, class_shrinkage=shrink,
                               class_groups=[list(effects)]).fit(d[["trial", "treatment", "x"]], d["y"])
            b = m.predict(d.iloc[:1])["benefit_vs_placebo"].iloc[0]
            err[shrink].append(b - effects["placebo"])
    rmse = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in err.items()}
    assert rmse[True] < 0.8 * rmse[False]  # the sparse class borrows from its set (truth: equal effects)


def _offsets(a, se):
    return np.r_[0.0, a], np.diag(np.r_[1.0, np.square(se)])


def test_limited_translation_bounds_the_pull_and_keeps_the_own_interval():
    comps = ["a", "b", "c"]
    # three classes close together except c: DerSimonian-Laird's spread is 0, every class pooled completely
    theta, cov = _offsets([10.0, 10.5, 8.0], [1.0, 1.0, 2.5])
    th0, cv0, rep0 = shrink_offsets(theta, cov, comps, limit=None)
    assert rep0["c"]["s_set"] == 0.0 and th0[3] == pytest.approx(th0[1])  # complete pooling, c moved 0.84 SE
    th, cv, rep = shrink_offsets(theta, cov, comps, limit=0.5)
    assert rep["c"]["limited"] and th[3] == pytest.approx(8.0 + 0.5 * 2.5)  # moved exactly 0.5 SE towards the set
    assert cv[3, 3] == pytest.approx(2.5 ** 2) and cv[3, 3] > cv0[3, 3]  # its own sampling variance, not the pooled one
    assert not rep["a"]["limited"] and th[1] == pytest.approx(th0[1])  # a and b: pulls under the bound, unchanged
    for c in comps:  # no class ends further than the bound from its own estimate
        assert abs(th[1 + comps.index(c)] - theta[1 + comps.index(c)]) <= 0.5 * np.sqrt(cov[1 + comps.index(c), 1 + comps.index(c)]) + 1e-12


def test_limited_translation_against_known_truth():
    """Classes with true effects 10.6 / 7.9 / 4.4 (the outside simulator's seed 3) estimated with SE 1.2 / 1.0 / 2.0:
    the plug-in pools the outlying, noisier class and its interval covers its truth ~0.77 of the time; bounded at
    0.5 SE it covers ~0.9, and its error is no larger; under exchangeable truth the sparse class keeps most of the gain."""
    rng = np.random.default_rng(7)
    comps = ["a", "b", "c"]
    def run(truth, se, limit, reps=600):
        truth, se = np.array(truth), np.array(se)
        est, hit = np.empty((reps, 3)), np.empty((reps, 3))
        draws = truth + se * np.random.default_rng(7).standard_normal((reps, 3))
        for r in range(reps):
            th, cv, _ = shrink_offsets(*_offsets(draws[r], se), comps, limit=limit)
            est[r] = th[1:]
            hit[r] = np.abs(th[1:] - truth) <= 1.96 * np.sqrt(np.diag(cv)[1:])
        return np.sqrt(np.mean((est - truth) ** 2, axis=0)), hit.mean(axis=0)
    rm0, cov0 = run([10.6, 7.9, 4.4], [1.2, 1.0, 2.0], None)
    rm1, cov1 = run([10.6, 7.9, 4.4], [1.2, 1.0, 2.0], 0.5)
    assert cov0[2] < 0.82 and cov1[2] > 0.87 and cov1.min() > 0.88
    assert np.all(rm1 <= rm0 * 1.02)
    rm_eq, _ = run([10.0, 10.0, 10.0], [1.0, 1.0, 4.0], 0.5)
    assert rm_eq[2] < 0.8 * 4.0  # the sparse class still borrows (own SE 4)
    del rng


def test_spread_posterior_mean_matches_the_tau_posterior():
    """E[s^2 | a_hat] from shrinkage.spread_posterior equals intervals.posterior_tau2 (its own code, itself
    checked against quadrature in tests/test_tau_posterior.py) for the same restricted likelihood and prior."""
    from training.learners.intervals import posterior_tau2
    from training.learners.shrinkage import spread_posterior

    rng = np.random.default_rng(3)
    for _ in range(10):
        a, se, scale = rng.normal(10, 3, 3), rng.uniform(0.5, 3, 3), rng.uniform(1, 5)
        t, p = spread_posterior(a, se ** 2, scale)
        assert p @ t ** 2 == pytest.approx(posterior_tau2(a, se, scale), rel=1e-9)
    t, p = spread_posterior([1.0, 2.0], [1.0, 1.0], 0.0)
    assert list(t) == [0.0] and list(p) == [1.0]  # scale 0: a point mass at 0


def _integrated_by_quadrature(a, v, scale, i):
    """Class i's point estimate and variance under spread='integrated', by scipy quadrature over s of the
    per-spread posterior mean mu(s) + w_i (a_i - mu(s)) and of the per-spread variance (the linear map's
    sampling variance + w_i (1 - w_i) v_i), weighted by restricted likelihood x half-normal prior."""
    from scipy.integrate import quad

    a, v = np.asarray(a, float), np.asarray(v, float)

    def parts(s):
        p = 1 / (v + s * s)
        mu = (p * a).sum() / p.sum()
        dens = np.exp(-0.5 * (np.log(v + s * s).sum() + np.log(p.sum()) + (p * (a - mu) ** 2).sum())
                      - 0.5 * (s / scale) ** 2)
        w = s * s / (s * s + v[i])
        row = (1 - w) * p / p.sum()
        row[i] += w
        return dens, row @ a, float(row ** 2 @ v + w * (1 - w) * v[i])
    z = quad(lambda s: parts(s)[0], 0, 12 * scale, epsabs=0, epsrel=1e-10, limit=200)[0]
    m1 = quad(lambda s: parts(s)[0] * parts(s)[1], 0, 12 * scale, epsabs=0, epsrel=1e-10, limit=200)[0] / z
    m2 = quad(lambda s: parts(s)[0] * parts(s)[1] ** 2, 0, 12 * scale, epsabs=0, epsrel=1e-10, limit=200)[0] / z
    ev = quad(lambda s: parts(s)[0] * parts(s)[2], 0, 12 * scale, epsabs=0, epsrel=1e-10, limit=200)[0] / z
    return m1, ev + m2 - m1 ** 2


@pytest.mark.parametrize("a,se,scale", [([10.6, 7.9, 4.4], [1.2, 1.0, 2.0], 3.0),
                                        ([10.0, 10.5, 8.0, 12.0], [1.0, 1.0, 2.5, 4.0], 2.0),
                                        # the outcome-scale prior (s13k: sigma/4, residual SD 15): the outside seed 3
                                        # set with no treatment's own SE, and `none`'s set (two equal, one far apart)
                                        ([9.08, 7.9, 4.4], [2.4, 1.0, 2.0], 3.75),
                                        ([10.67, 11.57, -2.91], [0.6, 0.6, 0.5], 3.75)])
def test_integrated_spread_against_quadrature(a, se, scale):
    comps = [f"c{k}" for k in range(len(a))]
    th, cv, rep = shrink_offsets(*_offsets(a, se), comps, spread="integrated", prior_scale=scale)
    for i in range(len(a)):
        m, var = _integrated_by_quadrature(a, np.square(se), scale, i)
        assert th[1 + i] == pytest.approx(m, abs=2e-3)
        assert cv[1 + i, 1 + i] == pytest.approx(var, rel=5e-3)
        assert rep[comps[i]]["spread"] == "integrated" and rep[comps[i]]["prior_scale"] == scale


def test_posterior_spread_never_pools_completely_and_prior_zero_does():
    comps = ["a", "b", "c"]
    theta, cov = _offsets([10.0, 10.5, 8.0], [1.0, 1.0, 2.5])  # DerSimonian-Laird: spread 0, complete pooling
    th0, _, rep0 = shrink_offsets(theta, cov, comps)
    assert rep0["c"]["weight_own"] == 0.0
    for spread in ("posterior", "integrated"):
        th, cv, rep = shrink_offsets(theta, cov, comps, spread=spread, prior_scale=3.0)
        assert 0 < rep["c"]["weight_own"] < 1 and rep["c"]["s_set"] > 0
        assert theta[3] < th[3] < th0[3]  # pulled up towards the set (own 8.0, pooled 10.08), not all the way
        thz, cvz, _ = shrink_offsets(theta, cov, comps, spread=spread, prior_scale=0.0)
        np.testing.assert_allclose(thz, th0, rtol=1e-12)  # a point-mass prior at 0 is complete pooling
        np.testing.assert_allclose(cvz, shrink_offsets(theta, cov, comps)[1], rtol=1e-12)
    with pytest.raises(ValueError, match="prior scale"):
        shrink_offsets(theta, cov, comps, spread="posterior")
    with pytest.raises(ValueError, match="class spread"):
        shrink_offsets(theta, cov, comps, spread="reml")


@pytest.mark.parametrize("binary", [False, True])
def test_effect_model_passes_the_pooled_tau_as_the_spread_prior(monkeypatch, binary):
    """The linear learners' call: shrinkage.SPREAD / LIMIT are used, and the prior scale is the fit's pooled
    between-trial tau (binary: divided by the mean p (1 - p), tau being on the risk scale, the offsets on logit)."""
    from training.learners import ConstantEffect, shrinkage

    monkeypatch.setattr(shrinkage, "SPREAD", "integrated")
    d = _trials(0, {"no_treatment": 10.0, "placebo": 6.0, "usual_care": 8.0},
                [("no_treatment", 60)] * 3 + [("usual_care", 60)] * 3 + [("placebo", 30)] * 3)
    y = (d["y"] < 45).astype(int) if binary else d["y"]
    m = ConstantEffect(features=["x"], n_boot=10, class_shrinkage=True, outcome_type="binary" if binary else "continuous",
                       class_groups=[["no_treatment", "placebo", "usual_care"]]).fit(d[["trial", "treatment", "x"]], y)
    rep, tau = m.export_["meta"]["class_shrinkage"], m.export_["interval"]["tau"]["__pooled__"]
    assert tau > 0  # (the trials have a random effect, SD 3)
    for c in ("no_treatment", "placebo", "usual_care"):
        assert rep[c]["spread"] == "integrated"
        if binary:
            assert rep[c]["prior_scale"] >= 4 * tau  # p (1 - p) <= 1/4
        else:
            assert rep[c]["prior_scale"] == pytest.approx(tau)


def test_prior_scale_on_the_outcome_scale_does_not_depend_on_the_trial_tau():
    from training.learners.shrinkage import PRIOR_FRACTION, prior_scale

    assert PRIOR_FRACTION == 0.25
    for tau in (0.0, 2.0, 9.0):
        assert prior_scale("outcome", tau, 1.0, "gaussian", 225.0) == pytest.approx(0.25 * 15.0)
        assert prior_scale("outcome", tau, 0.2, "binomial", 1.0) == pytest.approx(0.25 * np.pi / np.sqrt(3))
        assert prior_scale("tau", tau, 0.5, "binomial", 1.0) == pytest.approx(tau / 0.5)
    assert prior_scale("outcome", 0.0, 1.0, "gaussian", 100.0, fraction=0.5) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="class spread prior"):
        prior_scale("sd", 1.0, 1.0, "gaussian", 1.0)


def test_outcome_scale_prior_against_known_truth_where_the_trial_tau_is_zero():
    """The `none` failure of the tau-scaled prior (s12k), on simulated class estimates: two equal classes and one
    10 points apart, measured precisely (SE 0.6 / 0.6 / 0.5) in trials without heterogeneity (pooled tau 0). The
    tau-scaled prior (a point mass at 0) pools the distant class completely (error ~ 7, no coverage); the
    outcome-scale prior (sigma 15 -> scale 3.75) keeps it (error about its own SE, coverage >= 0.9), and a sparse
    class of an equal set still borrows (root error well under its own SE 4)."""
    comps = ["a", "b", "c"]

    def run(truth, se, scale, reps=400):
        truth, se = np.array(truth, float), np.array(se, float)
        draws = truth + se * np.random.default_rng(11).standard_normal((reps, 3))
        est, hit = np.empty((reps, 3)), np.empty((reps, 3))
        for r in range(reps):
            th, cv, _ = shrink_offsets(*_offsets(draws[r], se), comps, spread="integrated", prior_scale=scale)
            est[r], hit[r] = th[1:], np.abs(th[1:] - truth) <= 1.96 * np.sqrt(np.diag(cv)[1:])
        return np.sqrt(np.mean((est - truth) ** 2, axis=0)), hit.mean(axis=0)

    rm_tau, cov_tau = run([10.0, 10.0, 0.0], [0.6, 0.6, 0.5], 0.0)
    rm_out, cov_out = run([10.0, 10.0, 0.0], [0.6, 0.6, 0.5], 3.75)
    assert rm_tau[2] > 5.0 and cov_tau[2] < 0.05
    assert rm_out[2] < 1.3 * 0.5 and cov_out.min() >= 0.9
    rm_eq, cov_eq = run([10.0, 10.0, 10.0], [1.0, 1.0, 4.0], 3.75)
    assert rm_eq[2] < 0.6 * 4.0 and cov_eq[2] >= 0.95


def test_effect_model_passes_the_outcome_scale_prior(monkeypatch):
    """With shrinkage.PRIOR = "outcome" the linear learners' prior scale is a quarter of the fit's residual SD,
    whatever the pooled tau, and the export's report says which prior was used."""
    from training.learners import ConstantEffect, shrinkage

    monkeypatch.setattr(shrinkage, "SPREAD", "integrated")
    monkeypatch.setattr(shrinkage, "PRIOR", "outcome")
    d = _trials(0, {"no_treatment": 10.0, "placebo": 6.0, "usual_care": 8.0},
                [("no_treatment", 60)] * 3 + [("usual_care", 60)] * 3 + [("placebo", 30)] * 3)
    m = ConstantEffect(features=["x"], n_boot=10, class_shrinkage=True,
                       class_groups=[["no_treatment", "placebo", "usual_care"]]).fit(d[["trial", "treatment", "x"]], d["y"])
    rep, sigma2 = m.export_["meta"]["class_shrinkage"], m.export_["meta"]["sigma2"]
    assert 100 < sigma2 < 200  # residual SD 12 in the simulation
    for c in ("no_treatment", "placebo", "usual_care"):
        assert rep[c]["prior"] == "outcome" and rep[c]["prior_scale"] == pytest.approx(0.25 * np.sqrt(sigma2))
