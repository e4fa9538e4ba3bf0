"""Per-feature prior variances by marginal likelihood (training.learners.ard): the evidence equals the
dense multivariate-normal density of the within-trial contrasts, its gradient the finite differences,
the optimum a derivative-free optimisation of that density; known truth (the simulator's modifier gets
a large prior SD, a noise feature none; no modification: the average-effect model); the fitted
coefficients are the ML-II posterior mean and the export is exact."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from tests._runtime import rt
from training.learners.ard import ARDEffectModel, column_groups, log_evidence, ml2_variances
from training.learners.effect_model import EffectModel
from training.simulate.small_trials import small_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _toy(seed=0, n=160, J=4, k_fixed=2, groups=(0, 0, 1, 2, 2)):
    """Within-trial contrasts K'y, K'Z of a random design (K: orthonormal basis of the complement of
    the trial dummies) with a real modifier group 0, a weak group 2 and a null group 1."""
    rng = np.random.default_rng(seed)
    trial = np.repeat(np.arange(J), n // J)
    D = np.eye(J)[trial]
    group = np.array(groups)
    Z = rng.normal(size=(n, k_fixed + group.size))
    b = np.concatenate([rng.normal(0, 3, k_fixed), np.where(group == 0, 2.0, np.where(group == 2, 0.4, 0.0))])
    y = D @ rng.normal(30, 5, J) + Z @ b + rng.normal(0, 2.0, n)
    Q, _ = np.linalg.qr(np.hstack([D, rng.normal(size=(n, n - J))]))
    K = Q[:, J:]
    Zt, yt = K.T @ Z, K.T @ y
    return Zt, yt, group, np.full(k_fixed, 100.0), n - J


def _dense_logpdf(params, Zt, yt, group, v_fixed):
    F = group.max() + 1
    v = np.concatenate([v_fixed, np.exp(params[:F])[group]])
    cov = np.exp(params[F]) * np.eye(yt.size) + (Zt * v) @ Zt.T
    return multivariate_normal(np.zeros(yt.size), cov).logpdf(yt)


def test_evidence_equals_the_dense_density_of_the_contrasts_and_gradient_is_exact():
    Zt, yt, group, v_fixed, n_eff = _toy()
    G, h, yy = Zt.T @ Zt, Zt.T @ yt, float(yt @ yt)
    for params in (np.array([0.5, -3.0, -1.0, 1.2]), np.array([2.0, 1.0, -6.0, 0.3])):
        neg, grad = log_evidence(params, G, h, yy, n_eff, group, v_fixed)
        assert -neg - 0.5 * n_eff * np.log(2 * np.pi) == pytest.approx(_dense_logpdf(params, Zt, yt, group, v_fixed),
                                                                       rel=1e-10)
        eps = 1e-6
        fd = [(log_evidence(params + eps * e, G, h, yy, n_eff, group, v_fixed, grad=False)
               - log_evidence(params - eps * e, G, h, yy, n_eff, group, v_fixed, grad=False)) / (2 * eps)
              for e in np.eye(params.size)]
        assert np.allclose(grad, fd, rtol=1e-5, atol=1e-5)


def test_ml2_optimum_matches_a_derivative_free_optimisation_of_the_dense_density():
    Zt, yt, group, v_fixed, n_eff = _toy(seed=1)
    res = ml2_variances(Zt.T @ Zt, Zt.T @ yt, float(yt @ yt), n_eff, group, v_fixed, sigma2_start=9.0)
    assert res["converged"]
    free = [0, 2]  # group 1 is null: its variance goes to the boundary (checked below)
    ref = minimize(lambda p: -_dense_logpdf(np.array([p[0], -18.0, p[1], p[2]]), Zt, yt, group, v_fixed),
                   x0=[0.0, 0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
    assert np.allclose(np.log(res["s2"][free]), ref.x[:2], atol=2e-3)
    assert np.log(res["sigma2"]) == pytest.approx(ref.x[2], abs=2e-3)
    assert res["s2"][1] < 1e-3 * res["s2"][0]  # the null group is switched off
    assert res["s2"][0] == pytest.approx(4.0, rel=0.7)  # the real one near its generating variance (2^2)


def test_column_groups():
    cols = [{"feature": 0, "kind": "linear"}, {"feature": 0, "kind": "rcs"}, {"feature": 0, "kind": "rcs"},
            {"feature": 3, "kind": "onehot"}, {"feature": 3, "kind": "onehot"}]
    assert column_groups(cols).tolist() == [0, 0, 0, 1, 1]
    assert column_groups(cols, "shape").tolist() == [0, 1, 1, 2, 2]
    assert column_groups(cols, "common").tolist() == [0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="groups"):
        column_groups(cols, "term")


@pytest.fixture(scope="module")
def data():
    X, y, truth = small_trials(n_trials=14, n_per_arm=120, seed=3, noise=6.0, effect_mod=6.0, bmi_mod=3.0)
    X = X.assign(noise_feature=np.random.default_rng(7).normal(size=len(X)))
    return X, y, truth


def test_known_truth_real_modifiers_get_variance_noise_none_and_it_beats_the_common_prior(data):
    X, y, truth = data
    m = ARDEffectModel(n_boot=20, modifier_knots=4, groups="shape", scale="ml2").fit(X, y)
    sd = m.ard_["prior_sd"]
    assert m.ard_["method"] == "ml2" and m.ard_["converged"]
    assert sd["fear_avoidance"] > 2.0 and sd["bmi:nonlinear"] > 0.5  # linear and curved (quadratic) modifiers
    assert sd["noise_feature"] < 0.1 * sd["fear_avoidance"] and sd["female"] < 0.1 * sd["fear_avoidance"]
    err = m.predict(X)["benefit_vs_usual_care"] - truth["benefit_vs_usual_care"]
    base = EffectModel(n_boot=0).fit(X, y)
    err0 = base.predict(X)["benefit_vs_usual_care"] - truth["benefit_vs_usual_care"]
    assert np.sqrt(np.mean(err ** 2)) < 0.8 * np.sqrt(np.mean(err0 ** 2))
    assert m.to_export()["meta"]["ard"]["prior_sd"] == sd


def test_no_modification_gives_the_average_effect_model():
    # seed 7: every prior SD at the boundary -> the average-effect model exactly; seed 5: a chance
    # modifier keeps a small SD (0.24 points per SD), far below a real one (test above: > 2)
    X, y, _ = small_trials(n_trials=12, n_per_arm=80, seed=7, noise=8.0, effect_mod=0.0)
    m = ARDEffectModel(n_boot=10, scale="ml2").fit(X, y)
    assert max(m.ard_["prior_sd"].values()) == 0.0 and m.interaction_sd_ == 0.0
    assert m.predict(X)["benefit_vs_usual_care"].std() < 1e-9 and m.to_export()["linear"]["modifier"] is None
    X, y, _ = small_trials(n_trials=12, n_per_arm=80, seed=5, noise=8.0, effect_mod=0.0)
    m = ARDEffectModel(n_boot=0, scale="ml2").fit(X, y)
    assert max(m.ard_["prior_sd"].values()) < 0.3 and m.predict(X)["benefit_vs_usual_care"].std() < 0.5


def test_fit_is_the_ml2_posterior_mean_and_exports_exactly(data):
    from training.learners.ard import gaussian_sufficient
    from training.learners.effect_model import shared_linear_data
    from training.learners.linear import design, make_basis

    X, y, _ = data
    Xm = X.copy()
    Xm.loc[::5, "bmi"] = np.nan
    m = ARDEffectModel(n_boot=10, modifier_knots=5, scale="ml2").fit(Xm, y)
    # the export's folded weights reproduce the per-feature prior: same coefficients as the posterior mean
    d = shared_linear_data(m, Xm, y)
    Mcols = make_basis(d.Fi, d.spec, 5)
    # (bmi's missing values: their columns are the expected basis, as the learner's design has them)
    P, M = design(make_basis(d.Fi, d.spec, 3), d.Fi, d.spread), design(Mcols, d.Fi, d.spread)
    G, h, yy, n_eff, n_off = gaussian_sufficient(d, P, M)
    s = np.array([m.ard_["prior_sd"][d.spec["names"][c["feature"]]] for c in Mcols])
    keep = s > 0
    sig2 = m.ard_["sigma2"]
    v = np.concatenate([np.full(n_off, 1e4 * sig2), np.full(P.shape[1], 50.0 ** 2), s[keep] ** 2])
    idx = np.r_[np.arange(n_off + P.shape[1]), n_off + P.shape[1] + np.flatnonzero(keep)]
    mpost = np.linalg.solve(G[np.ix_(idx, idx)] / sig2 + np.diag(1 / v), h[idx] / sig2)
    gamma_cols = m.theta_[1 + n_off + P.shape[1]:] * (s[keep] / s.max())  # coefficient per original column
    assert np.allclose(gamma_cols, mpost[n_off + P.shape[1]:], rtol=1e-4, atol=1e-6)
    exp = json.loads(json.dumps(m.to_export()))
    assert exp["kind"] == "effect_model" and exp["meta"]["ard"]["method"] == "ml2"
    pd.testing.assert_frame_equal(m.predict_interval(Xm.head(150)), rt.predict_from_export(exp, Xm.head(150)),
                                  check_exact=True)
    c = clone(m)
    assert c.get_params()["modifier_knots"] == 5 and not hasattr(c, "ard_")


def test_binary_outcomes_fall_back_to_the_cross_validated_common_prior():
    X, y, _ = small_trials(n_trials=10, n_per_arm=60, seed=2, outcome="binary", effect_mod=6.0)
    m = ARDEffectModel(outcome_type="binary", n_boot=0, modifier_knots=3).fit(X, y)
    base = EffectModel(outcome_type="binary", n_boot=0).fit(X, y)
    assert m.ard_["method"] == "cv_common_sd" and "binomial" in m.ard_["reason"]
    assert np.allclose(m.theta_, base.theta_)


def test_cv_scale_chooses_the_common_multiplier_on_held_out_trials(data):
    from training.learners.ard import MULTIPLIERS

    X, y, truth = data
    m = ARDEffectModel(n_boot=10, modifier_knots=4, scale="cv").fit(X, y)  # ML-II shape, CV level
    t = m.cv_
    assert t["multiplier"].tolist() == list(MULTIPLIERS) and np.isfinite(t["r_loss"]).all()
    best = float(t.loc[t["r_loss"].idxmin(), "multiplier"])
    assert m.ard_["method"] == "ml2_shape_cv_scale" and m.ard_["multiplier"] == best > 0  # real modification
    assert m.interaction_sd_ == pytest.approx(best * max(m.ard_["prior_sd"].values()))
    assert t.loc[t["multiplier"] == 0.0, "r_loss"].item() > t["r_loss"].min()  # beats the average-effect model
    exp = json.loads(json.dumps(m.to_export()))
    pd.testing.assert_frame_equal(m.predict_interval(X.head(100)), rt.predict_from_export(exp, X.head(100)),
                                  check_exact=True)
    with pytest.raises(ValueError, match="scale"):
        ARDEffectModel(n_boot=0, scale="evidence").fit(X, y)


def test_effect_ard_is_an_optional_learner_of_train():
    from training.config import load_config
    from training.train import LEARNERS, OPTIONAL_LEARNERS, _groups, make_learner

    cfg = load_config(None)
    assert "effect_ard" in OPTIONAL_LEARNERS and "effect_ard" not in LEARNERS
    m = make_learner("effect_ard", "continuous", cfg, 1, n_boot=0)
    assert isinstance(m, ARDEffectModel) and m.scale == "hier" and m.modifier_knots == 3
    assert ["constant", "effect_model", "effect_ard"] in _groups(["constant", "effect_model", "effect_ard"])


def test_train_command_names_the_optional_learner(tmp_path):
    import typer
    from typer.testing import CliRunner

    from lbp_benefit.cmd_train import train

    app = typer.Typer()
    app.command()(train)
    app.command("noop")(lambda: None)
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), "--learner", "effect_bogus"])
    assert r.exit_code != 0 and "effect_ard" in str(r.exception) and not (tmp_path / "run").exists()


def test_bench_effect_variants_builds_the_named_variants():
    from benchmarks.bench_effect_variants import make_variant
    from training.config import load_config

    cfg = load_config(None)
    a = make_variant("ard_cv_s5", cfg, 1, 0)
    assert isinstance(a, ARDEffectModel) and (a.scale, a.groups, a.modifier_knots) == ("cv", "shape", 5)
    e = make_variant("em_k4", cfg, 1, 0)
    assert type(e) is EffectModel and e.modifier_knots == 4 and e.adaptive is False
    assert make_variant("effect_adaptive", cfg, 1, 0).adaptive == "always"
    h = make_variant("ard_hier_f3_0.5", cfg, 1, 0)
    assert (h.scale, h.groups, h.modifier_knots, h.hyper_sd) == ("hier", "feature", 3, 0.5)
    f = make_variant("em_fine", cfg, 1, 0)
    assert type(f) is EffectModel and len(f.interaction_grid) == 11 and 0.0 in f.interaction_grid
    assert make_variant("ep_n2", cfg, 1, 0).n_pairs == 2 and make_variant("ep_n2", cfg, 1, 0).pairs is True
    sh = make_variant("em_shape", cfg, 1, 0)
    assert isinstance(sh, EffectModel) and sh.get_params() == make_variant("effect_model", cfg, 1, 0).get_params()
    with pytest.raises(ValueError, match="unknown variant"):
        make_variant("ridge", cfg, 1, 0)


def test_bench_knots_variant_is_the_effect_model_without_a_knots_choice(data):
    from benchmarks.bench_effect_variants import _knots_cv

    X, y, _ = data
    k = _knots_cv(4)(n_boot=0, interaction_sd=2.0).fit(X, y)  # fixed prior SD: no CV, the 4-knot columns dropped
    plain = EffectModel(n_boot=0, interaction_sd=2.0).fit(X, y)
    np.testing.assert_allclose(k.theta_, plain.theta_, atol=1e-10)
    cv = _knots_cv(4)(n_boot=0).fit(X, y)
    mods = [c for c in cv.to_export()["linear"]["modifier"]["basis"] if c["kind"] == "rcs"]
    for f in {c["feature"] for c in mods}:  # each feature's spline has 3 or 4 knots, never both
        assert len({len(c["knots"]) for c in mods if c["feature"] == f}) == 1


def test_bench_shape_variant_chooses_a_ratio_by_cv_and_ratio_one_is_the_effect_model(data):
    from benchmarks.bench_effect_variants import SHAPE_RATIOS, _shape_cv

    X, y, _ = data
    sh = _shape_cv()(n_boot=0).fit(X, y)
    assert sh.shape_ratio_ in SHAPE_RATIOS
    plain = EffectModel(n_boot=0).fit(X, y)
    if sh.shape_ratio_ == 1.0:
        np.testing.assert_allclose(sh.theta_, plain.theta_, atol=1e-10)
    else:  # the spline columns' prior SD moved: a different fit
        assert not np.allclose(sh.theta_[:plain.theta_.size], plain.theta_) or sh.theta_.size != plain.theta_.size


def test_modifier_knots_hook_gives_the_modifiers_richer_splines(data):
    X, y, _ = data
    m3 = EffectModel(n_boot=0, interaction_sd=2.0).fit(X, y)
    m5 = EffectModel(n_boot=0, interaction_sd=2.0)
    m5.modifier_knots = 5
    m5.fit(X, y)
    n_cont = 5  # age, bmi, fear_avoidance, baseline_pain, noise_feature: 1 -> 3 spline terms each
    assert m5.to_export()["linear"]["n_mod"] == m3.to_export()["linear"]["n_mod"] + 2 * n_cont
    assert m5.to_export()["linear"]["n_prog"] == m3.to_export()["linear"]["n_prog"]  # prognostic part unchanged


def test_hyperprior_adds_a_lognormal_log_density_with_exact_gradient():
    Zt, yt, group, v_fixed, n_eff = _toy(seed=2)
    G, h, yy = Zt.T @ Zt, Zt.T @ yt, float(yt @ yt)
    params, hyper = np.array([0.3, -2.0, 1.0, 1.5]), (0.5, 0.7)
    plain = log_evidence(params, G, h, yy, n_eff, group, v_fixed, grad=False)
    neg, grad = log_evidence(params, G, h, yy, n_eff, group, v_fixed, hyper=hyper)
    assert neg - plain == pytest.approx(0.5 * np.sum((params[:3] - 0.5) ** 2) / 0.7 ** 2, rel=1e-12)
    eps = 1e-6
    fd = [(log_evidence(params + eps * e, G, h, yy, n_eff, group, v_fixed, grad=False, hyper=hyper)
           - log_evidence(params - eps * e, G, h, yy, n_eff, group, v_fixed, grad=False, hyper=hyper)) / (2 * eps)
          for e in np.eye(params.size)]
    assert np.allclose(grad, fd, rtol=1e-5, atol=1e-5)


def test_hier_scale_moves_from_the_common_ridge_to_feature_wise_variances(data):
    X, y, truth = data
    base = EffectModel(n_boot=0).fit(X, y)
    tight = ARDEffectModel(n_boot=0, modifier_knots=3, scale="hier", hyper_sd=1e-3).fit(X, y)
    sd = np.array(list(tight.ard_["prior_sd"].values()))
    assert tight.ard_["common_sd"] == base.interaction_sd_ and np.allclose(sd, base.interaction_sd_, rtol=0.02)
    # a tight hyperprior = the common ridge at the CV SD; the penalty sigma^2 / sd^2 then differs from the
    # effect model's only by sigma^2 (ML-II here, the constant-effect fit's residual variance there)
    b0, b1 = base.predict(X)["benefit_vs_usual_care"], tight.predict(X)["benefit_vs_usual_care"]
    assert tight.ard_["sigma2"] < base.to_export()["meta"]["sigma2"]  # the modification is no longer residual
    assert np.corrcoef(b0, b1)[0, 1] > 0.999 and np.max(np.abs(b1 - b0)) < 0.5
    free = ARDEffectModel(n_boot=0, modifier_knots=3, scale="hier", hyper_sd=1.0).fit(X, y)
    s = free.ard_["prior_sd"]
    assert s["fear_avoidance"] > base.interaction_sd_ > s["noise_feature"]  # the evidence moves them apart
    err = lambda m: np.sqrt(np.mean((m.predict(X)["benefit_vs_usual_care"] - truth["benefit_vs_usual_care"]) ** 2))  # noqa: E731
    assert err(free) < err(base)
    Xn, yn, _ = small_trials(n_trials=12, n_per_arm=80, seed=5, noise=8.0, effect_mod=0.0)
    none = ARDEffectModel(n_boot=0, scale="hier").fit(Xn, yn)  # (plain ML-II keeps a chance modifier here)
    assert EffectModel(n_boot=0).fit(Xn, yn).interaction_sd_ == 0  # CV: no modification -> the average effect
    assert none.interaction_sd_ == 0 and none.ard_["common_sd"] == 0.0
    assert none.predict(Xn)["benefit_vs_usual_care"].std() < 1e-9
