"""The expected basis of a patient with missing inputs, E[B(X) | observed] (predict.expected_basis):
against a Monte-Carlo expectation over many conditional draws (an independent computation), on
every evaluator (numpy reference, compiled program; explanations add up), with complete patients'
numbers byte-identical to the conditional-mean basis, and training's design consistent with it."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from predict import fused as fz
from predict import kernels as _fast
from predict.expected_basis import NODES, WEIGHTS, cond_spread, expect_columns
from predict.explain import explain
from predict.features import feature_matrix
from predict.impute import impute_mean
from predict.learner_model import as_learner
from predict.linear import Linear, basis_compiled, block_matrix, compile_basis
from predict.program import compile_program
from predict.reference import task_scores
from training.learners.effect_model import EffectModel, shared_linear_data
from training.learners.linear import design
from training.simulate.small_trials import small_trials

Z = 1.959963984540054


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = small_trials(n_trials=8, n_per_arm=40, seed=21, noise=10.0, effect_mod=5.0, missing=0.15)
    with threadpool_limits(1):
        m = EffectModel(n_boot=4, interaction_sd=2.0, n_knots=4).fit(X, y)
    return X, y, m, m.to_export()


def _plug_in(exp: dict) -> dict:
    e = copy.deepcopy(exp)
    e["linear"].pop("missing", None)
    return e


def _patients(X, exp, seed: int = 0, p_missing: float = 0.5) -> np.ndarray:
    F = feature_matrix(exp["features"], X.head(60))
    F = F[~np.isnan(F).any(axis=1)][:20]
    G = F.copy()
    H = G[:, :-1]  # the last feature is the baseline (kept)
    H[np.random.default_rng(seed).random(H.shape) < p_missing] = np.nan
    G[:, :-1] = H
    G[0, :-1] = np.nan  # every covariate missing
    return np.vstack([F, G])


def test_gauss_hermite_nodes_integrate_normal_moments():
    for k, want in ((0, 1.0), (2, 1.0), (4, 3.0), (6, 15.0)):
        assert abs(WEIGHTS @ NODES ** k - want) < 1e-10


def test_expected_columns_equal_a_monte_carlo_expectation(fitted):
    """Spline terms (bounded nodes) and products of a learner's blocks against the mean over 400,000
    conditional draws per patient (X = m + L z, bounded), within 5 Monte-Carlo SEs."""
    X, _, _, exp = fitted
    L = as_learner(exp)
    imp = L.imputer
    F = _patients(X, exp)[20:26]
    names = exp["features"]["names"]
    cols = list(L.linear.modifier.basis) + [  # and two products (one pair often both missing)
        {"feature": names.index("age"), "feature2": names.index("bmi"), "kind": "product", "origin": 45.0,
         "origin2": 27.0, "loc": 0.0, "scale": 10.0},
        {"feature": names.index("female"), "feature2": names.index("age"), "kind": "product", "origin": 0.5,
         "origin2": 45.0, "loc": 0.0, "scale": 10.0}]
    plan = compile_basis(cols)
    Fimp = impute_mean(imp, F)
    got = expect_columns(plan, basis_compiled(plan, Fimp), Fimp, cond_spread(imp, F))
    rng = np.random.default_rng(5)
    S, mu = imp.cov, imp.mean
    checked = 0
    for i, row in enumerate(F):
        m = np.isnan(row)
        o = ~m
        A = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
        cm = mu[m] + (row[o] - mu[o]) @ A
        Sc = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ A
        D = np.tile(row, (400_000, 1))
        D[:, m] = cm + rng.standard_normal((400_000, m.sum())) @ np.linalg.cholesky(Sc).T
        D = np.clip(D, imp.lower, imp.upper)
        B = basis_compiled(plan, D)
        for k, c in enumerate(cols):
            if c["kind"] == "rcs" and m[c["feature"]]:
                se = B[:, k].std() / np.sqrt(len(B))
                assert abs(got[i, k] - B[:, k].mean()) < 5 * se + 1e-6, (i, c)
                checked += 1
            elif c["kind"] == "product" and m[c["feature"]] and m[c["feature2"]]:
                # products: the bounds are not applied inside (module docstring): compare unbounded draws
                Du = np.tile(row, (400_000, 1))
                Du[:, m] = cm + rng.standard_normal((400_000, m.sum())) @ np.linalg.cholesky(Sc).T
                mc = ((Du[:, c["feature"]] - c["origin"]) * (Du[:, c["feature2"]] - c["origin2"])).mean()
                # the product of the bounded conditional means plus the conditional covariance
                want_raw = (Fimp[i, c["feature"]] - c["origin"]) * (Fimp[i, c["feature2"]] - c["origin2"]) \
                    + Sc[m[:c["feature"]].sum(), m[:c["feature2"]].sum()]
                assert abs(want_raw - mc) < 0.02 * (abs(mc) + 10)
                assert got[i, k] == pytest.approx((want_raw - c["loc"]) / c["scale"], rel=1e-9, abs=1e-9)
                checked += 1
    assert checked >= 5


def test_complete_patients_are_byte_identical_and_missing_ones_move(fitted):
    X, _, _, exp = fitted
    assert exp["linear"]["missing"] == "expected"
    F = _patients(X, exp)
    comp = exp["comparators"][0]
    new, old = task_scores(exp, F, comp, arms=True), task_scores(_plug_in(exp), F, comp, arms=True)
    full = ~np.isnan(F).any(axis=1)
    for key in ("exercise", "comparator", "benefit", "se_est", "var_missing"):
        assert np.array_equal(new[key][full], old[key][full]), key
    assert np.array_equal(new["var_missing"], old["var_missing"])  # the draws' spread: the interval's part
    assert np.abs(new["benefit"][~full] - old["benefit"][~full]).max() > 1e-3
    # a linear part without the field: spread ignored (artifacts before 2026-12-07 score as they did)
    lin = as_learner(_plug_in(exp)).linear
    Fimp = impute_mean(exp["imputer"], F)
    sp = cond_spread(exp["imputer"], F)
    assert np.array_equal(block_matrix(lin.modifier, Fimp, spread=lin.spread_of(sp)), block_matrix(lin.modifier, Fimp))


def test_unknown_missing_rule_is_refused(fitted):
    exp = copy.deepcopy(fitted[3])
    exp["linear"]["missing"] = "sampled"
    with pytest.raises(ValueError, match="missing='sampled'"):
        Linear.of(exp["linear"], len(exp["comparators"]))


@pytest.mark.skipif(not _fast.AVAILABLE, reason="numba not installed: no compiled program")
def test_compiled_program_takes_the_expected_basis(fitted):
    X, _, _, exp = fitted
    F = _patients(X, exp, seed=3)
    for comp in exp["comparators"]:
        for e in (exp, _plug_in(exp)):
            out = compile_program([copy.deepcopy(e)], comp).run(F, arms=True, threads=1, z=Z)
            ref = task_scores(e, F, comp, arms=True)
            for key, row in (("exercise", fz.O_A), ("comparator", fz.O_C), ("benefit", fz.O_B),
                             ("se_est", fz.O_SE), ("var_missing", fz.O_VAR)):
                np.testing.assert_allclose(out[row, 0], ref[key], rtol=1e-9, atol=1e-10, err_msg=f"{comp} {key}")
            np.testing.assert_allclose(out[fz.O_SEA, 0], ref["arm_se"][0], rtol=1e-9, atol=1e-10)
        a = compile_program([copy.deepcopy(exp)], comp).run(F, threads=1, z=Z)
        b = compile_program([_plug_in(exp)], comp).run(F, threads=1, z=Z)
        full = ~np.isnan(F).any(axis=1)
        assert np.array_equal(a[:, :, full], b[:, :, full], equal_nan=True)
        assert np.abs(a[fz.O_B, 0, ~full] - b[fz.O_B, 0, ~full]).max() > 1e-3


def test_explanation_adds_up_with_missing_inputs(fitted):
    X, _, _, exp = fitted
    F = _patients(X, exp, seed=4)
    comp = exp["comparators"][0]
    base, c = explain(exp, F, impute_mean(exp["imputer"], F), comp)
    np.testing.assert_allclose(base + c.sum(1), task_scores(exp, F, comp)["benefit"], rtol=0, atol=1e-9)
    assert np.ptp(base) < 1e-9  # one base for every patient


def test_training_design_is_the_expected_basis_of_the_within_trial_imputation(fitted):
    """Training rows: the spread of GaussianImputer.spread_train (within-trial mean and covariance)
    has the training imputation's values as its bounded means, and the learner's design on them is
    the expected basis (spline columns of a missing value differ from the conditional-mean basis)."""
    X, y, m, exp = fitted
    d = shared_linear_data(m, X, y)
    sp = d.spread
    assert sp is not None and sp.rows.size == np.isnan(d.F).any(axis=1).sum()
    np.testing.assert_allclose(np.clip(sp.mean, sp.lower, sp.upper), d.Fi[sp.rows], rtol=0, atol=1e-9)
    cols = list(as_learner(exp).linear.modifier.basis)
    E, B = design(cols, d.Fi, sp), design(cols, d.Fi)
    full = np.setdiff1d(np.arange(d.Fi.shape[0]), sp.rows)
    assert np.array_equal(E[full], B[full]) and np.abs(E - B).max() > 1e-3
    _, _, _, M = m._design(d)
    np.testing.assert_allclose(M, E, rtol=0, atol=1e-12)
