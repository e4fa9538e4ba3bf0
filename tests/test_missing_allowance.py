"""The X-/DR-learners' missing-input allowance (training.learners.missing_allowance): it reaches the
served SE (exported learner scored by predict/, reference and compiled paths), it is the linear
reference's extra missing-draw variance (>= 0, none for complete rows, none for binary outcomes), and
one reference serves the X- and DR-learner of a job."""
from __future__ import annotations

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from predict import kernels as _fast
from predict.features import feature_matrix
from predict.runtime import predict_from_export
from predict.support import support_scores
from predict.uncertainty import missing_variance
from training.learners import boosted
from training.learners.boosted import CrossFitCache, DRLearner, XLearner
from training.learners.effect_model import EffectModel
from training.learners.missing_allowance import missing_allowance, reference_variance
from training.simulate.small_trials import small_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    # strong modification by fear-avoidance, which is missing for 40% of the rows
    X, y, truth = small_trials(n_trials=10, n_per_arm=60, seed=31, noise=8.0, effect_mod=8.0, missing=0.4)
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    with threadpool_limits(1):
        return XLearner(n_boot=4, n_folds=3, boot_folds=2).fit(X, y)


def _total_allowance(exp, c):
    s = exp["meta"]["missing_allowance"]
    return s["mean_allowance"][c] * s["rows_with_missing"] / exp["meta"]["n"]


def test_the_allowance_reaches_the_served_se(data, fitted):
    """(Served SE / extrapolation factor)^2 - own missing-draw variance, averaged over the training rows, = the bootstrap's
    mean variance + the mean allowance (the variance model keeps the mean of what it is fitted to),
    through the JSON export and predict/'s scoring; the allowance is a real share of it."""
    X, _ = data
    exp = json.loads(json.dumps(fitted.to_export()))
    assert exp["meta"]["missing_allowance"]["method"] == "reference_missing_variance"
    p = predict_from_export(exp, X, intervals=True)
    F = feature_matrix(exp["features"], X)
    mv = missing_variance(exp, F)
    f = support_scores(exp["support"], F)["factor"]  # the extrapolation widening (>= 1)
    boot = np.stack(fitted.boot_predictions_)
    for i, c in enumerate(exp["comparators"]):
        served = (p[f"benefit_vs_{c}_se"].to_numpy() / f) ** 2 - mv[c]
        want = boot[:, :, i].var(axis=0, ddof=1).mean() + _total_allowance(exp, c)
        assert served.mean() == pytest.approx(want, rel=1e-6)
        assert _total_allowance(exp, c) > 0.2 * boot[:, :, i].var(axis=0, ddof=1).mean()


@pytest.mark.skipif(not _fast.AVAILABLE, reason="numba not installed: no fused program")
def test_the_compiled_scorer_serves_the_same_se(data, fitted):
    from predict import fused as fz
    from predict.program import compile_program

    X, _ = data
    exp = json.loads(json.dumps(fitted.to_export()))
    F = feature_matrix(exp["features"], X)
    ref = predict_from_export(exp, X, intervals=True)
    mv = missing_variance(exp, F)
    f = support_scores(exp["support"], F)["factor"]  # applied by the scorer after the program
    for c in exp["comparators"]:
        out = compile_program([exp], c).run(F, arms=False, threads=1, z=1.959963984540054)
        np.testing.assert_allclose(out[fz.O_SE, 0] ** 2 + out[fz.O_VAR, 0], (ref[f"benefit_vs_{c}_se"] / f) ** 2,
                                   rtol=1e-9)
        np.testing.assert_allclose(out[fz.O_VAR, 0], mv[c], rtol=1e-9, atol=1e-10)


def test_allowance_is_the_reference_excess_and_zero_for_complete_rows(data, fitted):
    X, y = data
    exp = fitted.to_export()
    F = feature_matrix(exp["features"], X)
    comps = exp["comparators"]
    ref = reference_variance(fitted, X, y, F, comps)
    # the reference is the linear effect model's expected variance over the same conditional draws: its
    # point fit's draw variance + what its coefficients' (bootstrap + shrinkage-bias) covariance adds
    from training.learners.missing_allowance import REFERENCE_BOOT, coefficient_draw_variance

    em = EffectModel(active=fitted.active, n_boot=REFERENCE_BOOT, n_draws=fitted.n_draws,
                     random_state=fitted.random_state).fit(X, y)
    coef = coefficient_draw_variance(em.export_, F)
    np.testing.assert_allclose(ref[comps[0]], missing_variance(em.export_, F, comps)[comps[0]] + coef, rtol=1e-12)
    np.testing.assert_allclose(ref["__coef__"], coef, rtol=1e-12)
    assert coef[~np.isnan(F).any(axis=1)].max() == 0 and coef.mean() > 0
    allow, summary = missing_allowance(fitted, exp, F, comps, lambda: ref)
    own = missing_variance(exp, F, comps)
    complete = ~np.isnan(F).any(axis=1)
    assert complete.sum() > 10 and (~complete).sum() > 10
    for c in comps:
        assert np.all(allow[c] >= 0)
        np.testing.assert_allclose(allow[c], np.maximum(ref[c] - own[c], 0.0))
        assert np.all(allow[c][complete] == 0)
        assert summary["mean_allowance"][c] == pytest.approx(allow[c][~complete].mean())
    # the trees understate the missing-draw variance of this modification (the reason for the allowance)
    assert summary["mean_reference"][comps[0]] > summary["mean_own"][comps[0]]


def test_no_allowance_for_binary_outcomes_or_complete_data(data, fitted):
    X, _ = data
    exp = fitted.to_export()
    F = feature_matrix(exp["features"], X)

    def never():
        raise AssertionError("the reference must not be fitted")

    b = XLearner(outcome_type="binary")
    allow, s = missing_allowance(b, exp, F, exp["comparators"], never)
    assert s["method"] == "none" and all(np.all(v == 0) for v in allow.values())
    Fc = np.nan_to_num(F, nan=1.0)
    allow, s = missing_allowance(fitted, exp, Fc, exp["comparators"], never)
    assert s["method"] == "none" and all(np.all(v == 0) for v in allow.values())


def test_one_reference_for_the_x_and_dr_learner_of_a_job(data, monkeypatch):
    X, y = data
    calls = []

    def counting(*a, **k):
        calls.append(1)
        return reference_variance(*a, **k)

    monkeypatch.setattr(boosted, "reference_variance", counting)
    cache = CrossFitCache()
    x = XLearner(n_boot=4, n_folds=3, boot_folds=2).fit(X, y, crossfit_cache=cache)
    dr = DRLearner(n_boot=4, n_folds=3, boot_folds=2).fit(X, y, crossfit_cache=cache)
    assert len(calls) == 1
    sx, sd = x.export_["meta"]["missing_allowance"], dr.export_["meta"]["missing_allowance"]
    assert sx["mean_reference"] == sd["mean_reference"]
    # without bootstrap (IECV folds) there is no interval and no reference fit
    XLearner(n_boot=0, n_folds=3).fit(X, y)
    assert len(calls) == 1


def test_coefficient_term_is_the_expected_draw_variance_over_the_coefficients(data):
    """coefficient_draw_variance = E_gamma[Var_draws(m_d' gamma)] - Var_draws(m_d' gamma_hat) for
    gamma ~ N(gamma_hat, V) (V the export's modifier covariance), checked by Monte Carlo over gamma
    on the same draws; 0 for complete rows and for a model without modifiers."""
    from predict.learner_model import as_learner
    from predict.linear import block_matrix
    from predict.uncertainty import missing_draws
    from training.learners.missing_allowance import coefficient_draw_variance

    X, y = data
    em = EffectModel(active="exercise", n_boot=30, random_state=3).fit(X, y)
    exp = em.to_export()
    F = feature_matrix(exp["features"], X)
    got = coefficient_draw_variance(exp, F)
    L = as_learner(exp)
    k = L.linear.n_mod
    assert k > 0
    V = np.asarray(exp["interval"]["theta_cov"])[-k:, -k:]
    g_hat = np.asarray(exp["linear"]["theta"])[-k:]
    rows, flat, M, n = missing_draws(L, F)
    B = block_matrix(L.linear.modifier, flat).reshape(M, n, k)
    # gamma draws moment-matched (sample mean gamma_hat, sample covariance V x (N-1)/N): plain draws left a
    # Monte-Carlo error of up to 14% in single rows at N = 4000, over rtol for some seeds and fits
    from training.learners.missing import moment_matched_normal

    N = 4000
    Zg = moment_matched_normal(np.random.default_rng(0), N, k)
    G = g_hat + Zg @ np.linalg.cholesky(V).T
    mc = np.mean([(B @ g).var(axis=0, ddof=1) for g in G], axis=0) - (B @ g_hat).var(axis=0, ddof=1)
    np.testing.assert_allclose(got[rows] * (N - 1) / N, mc, rtol=1e-6, atol=1e-9 * got[rows].mean())
    assert got[rows].mean() > 0.05 and np.all(got[~rows] == 0)
    const = EffectModel(active="exercise", n_boot=5, interaction_sd=0.0).fit(X, y)
    assert np.all(coefficient_draw_variance(const.to_export(), F) == 0)
