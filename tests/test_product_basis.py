"""The "product" basis column (x_a - o_a)(x_b - o_b), an interaction of two modifiers: its value,
the benefit it adds, its missing-data variance over the conditional draws and its explanation
(each feature's two-player Shapley value), each against an independent numpy computation, on
the numpy reference and on the compiled program; an export without product columns scores as
before."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from predict import column_kernels
from predict import fused as fz
from predict import kernels as _fast
from predict.expected_basis import cond_spread, expect_columns
from predict.explain import explain
from predict.impute import Imputer, impute_draws, impute_mean, impute_mean_fast
from predict.learner_model import as_learner
from predict.linear import basis, basis_compiled, compile_basis
from predict.model_format import parse_learner
from predict.program import compile_program
from predict.reference import task_scores
from predict.features import feature_matrix
from training.learners.effect_model import EffectModel
from training.simulate.small_trials import small_trials

Z = 1.959963984540054


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = small_trials(n_trials=8, n_per_arm=40, seed=21, noise=10.0, effect_mod=5.0, missing=0.15)
    with threadpool_limits(1):
        m = EffectModel(n_boot=4, interaction_sd=2.0).fit(X, y)
    return X, m.to_export()


PRODUCTS = [  # (feature a, feature b, origin a, origin b, loc, scale, gamma)
    ("age", "bmi", 45.0, 27.0, 3.0, 50.0, 1.5),
    ("female", "fear_avoidance", 0.55, 40.0, -1.0, 7.0, -2.0),
]


def _with_products(exp: dict) -> dict:
    """``exp`` plus the PRODUCTS columns at the end of its modifier block (centre 0.1, 0.2; the
    covariance padded with a small diagonal)."""
    e = copy.deepcopy(exp)
    names = e["features"]["names"]
    lin = e["linear"]
    mod = lin["modifier"]
    for a, b, oa, ob, loc, scale, _ in PRODUCTS:
        mod["basis"].append({"feature": names.index(a), "feature2": names.index(b), "kind": "product",
                             "origin": oa, "origin2": ob, "loc": loc, "scale": scale})
    mod["center"] = list(mod["center"]) + [0.1, 0.2]
    lin["theta"] = list(lin["theta"]) + [g for *_, g in PRODUCTS]
    lin["n_mod"] += len(PRODUCTS)
    V = np.asarray(e["interval"]["theta_cov"])
    k = V.shape[0] + len(PRODUCTS)
    W = np.zeros((k, k))
    W[:V.shape[0], :V.shape[0]] = V
    W[V.shape[0]:, V.shape[0]:] = np.diag([0.3, 0.5])
    W[0, -1] = W[-1, 0] = 0.05  # a correlation with the intercept: the delta method's cross term
    e["interval"]["theta_cov"] = W.tolist()
    return e


def _cond_cov(exp: dict, F: np.ndarray, a: str, b: str) -> np.ndarray:
    """Per row, the conditional covariance of features a and b given the row's observed ones under
    the imputer's normal, S_mm - S_mo S_oo^-1 S_om written out row by row (0 unless both missing)."""
    names = exp["features"]["names"]
    S = np.asarray(exp["imputer"]["cov"])
    ia, ib = names.index(a), names.index(b)
    out = np.zeros(F.shape[0])
    for i, row in enumerate(F):
        m = np.isnan(row)
        if not (m[ia] and m[ib]):
            continue
        o = ~m
        Sc = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)]) @ S[np.ix_(o, m)]
        idx = np.flatnonzero(m)
        out[i] = Sc[np.searchsorted(idx, ia), np.searchsorted(idx, ib)]
    return out


def _product_terms(exp: dict, F: np.ndarray, Fraw: np.ndarray | None = None) -> np.ndarray:
    """Per product column, gamma ((x_a - o_a)(x_b - o_b) - loc) / scale - gamma centre (n, 2),
    written out by hand; with ``Fraw`` (F: its conditional means) the product's expectation adds the
    conditional covariance of a and b (the export's linear part takes the expected basis)."""
    names = exp["features"]["names"]
    out = []
    for (a, b, oa, ob, loc, scale, g), c in zip(PRODUCTS, (0.1, 0.2)):
        v = (F[:, names.index(a)] - oa) * (F[:, names.index(b)] - ob)
        if Fraw is not None:
            v = v + _cond_cov(exp, Fraw, a, b)
        out.append(g * ((v - loc) / scale - c))
    return np.column_stack(out)


def _patients(X, exp, seed=3) -> np.ndarray:
    F = feature_matrix(exp["features"], X.head(40))
    F = F[~np.isnan(F).any(axis=1)][:12]
    rng = np.random.default_rng(seed)
    G = F.copy()
    names = exp["features"]["names"]
    G[0, names.index("age")] = np.nan  # one factor of a product missing
    G[1, names.index("female")] = np.nan
    G[2, [names.index("age"), names.index("bmi")]] = np.nan  # both
    G[3, names.index("fear_avoidance")] = np.nan
    H = G[4:8, :-1]  # (the last feature is the baseline: kept)
    H[rng.random(H.shape) < 0.4] = np.nan
    G[4:8, :-1] = H
    return np.vstack([F, G])


def test_product_value_on_every_basis_evaluator(fitted):
    _, exp = fitted
    e = _with_products(exp)
    cols = e["linear"]["modifier"]["basis"]
    F = np.random.default_rng(0).normal(40, 10, (30, len(e["features"]["names"])))
    names = e["features"]["names"]
    want = np.column_stack([((F[:, names.index(a)] - oa) * (F[:, names.index(b)] - ob) - loc) / scale
                            for a, b, oa, ob, loc, scale, _ in PRODUCTS])
    got = [basis(cols, F), basis_compiled(compile_basis(cols), F)]
    if _fast.AVAILABLE:
        got.append(column_kernels.basis(column_kernels.compile_columns(cols), F))
    for B in got:
        np.testing.assert_allclose(B[:, -2:], want, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(B[:, :-2], basis(cols[:-2], F), rtol=1e-13, atol=1e-12)
    assert parse_learner(e, "x").linear.modifier.basis[-1].kind == "product"
    bad = copy.deepcopy(e)
    del bad["linear"]["modifier"]["basis"][-1]["origin2"]
    with pytest.raises(Exception, match="origin2"):
        parse_learner(bad, "x")


def test_benefit_and_missing_variance_against_numpy(fitted):
    X, exp = fitted
    e = _with_products(exp)
    F = _patients(X, e)
    imp = e["imputer"]
    for comp in e["comparators"]:
        base, ref = task_scores(exp, F, comp), task_scores(e, F, comp)
        # continuous benefit = comparator - exercise: the products' terms enter the exercise arm
        Fi = impute_mean(imp, F)
        assert e["linear"].get("missing") == "expected" and abs(_cond_cov(e, F, "age", "bmi")[F.shape[0] // 2 + 2]) > 0.1
        np.testing.assert_allclose(ref["benefit"], base["benefit"] - _product_terms(e, Fi, F).sum(1), rtol=0, atol=1e-9)
        # the variance over the conditional draws of the missing inputs, by hand
        miss = np.isnan(F).any(axis=1)
        D = impute_draws(imp, F[miss])  # (M, n, p)
        M = D.shape[0]
        D = D.reshape(-1, D.shape[2])
        b0 = task_scores(exp, D, comp)["benefit"] - _product_terms(e, D).sum(1)
        want = np.zeros(F.shape[0])
        want[miss] = b0.reshape(M, -1).var(axis=0, ddof=1)
        np.testing.assert_allclose(ref["var_missing"], want, rtol=1e-9, atol=1e-10)
        h = F.shape[0] // 2  # the first rows with a missing input: a product's factor drawn, it moves
        assert (ref["var_missing"][h:h + 4] > base["var_missing"][h:h + 4]).all() and (ref["var_missing"][:h] == 0).all()
        # the delta method's SE with the padded covariance
        L = as_learner(e)
        assert np.isfinite(ref["se_est"]).all() and L.linear.n_mod == exp["linear"]["n_mod"] + 2


@pytest.mark.skipif(not _fast.AVAILABLE, reason="numba not installed: no compiled program")
def test_compiled_program_matches_reference_with_products(fitted):
    X, exp = fitted
    e = _with_products(exp)
    F = _patients(X, e)
    for comp in e["comparators"]:
        prog = compile_program([copy.deepcopy(e)], comp)
        assert prog is not None
        for arms in (False, True):
            out = prog.run(F, arms=arms, threads=1, z=Z)
            ref = task_scores(e, F, comp, arms=arms)
            for key, row in (("exercise", fz.O_A), ("comparator", fz.O_C), ("benefit", fz.O_B),
                             ("se_est", fz.O_SE), ("var_missing", fz.O_VAR)):
                np.testing.assert_allclose(out[row, 0], ref[key], rtol=1e-9, atol=1e-10, err_msg=f"{comp} {key}")
            if arms:
                for row, want in ((fz.O_SEA, ref["arm_se"][0]), (fz.O_VA, ref["arm_var_missing"][0])):
                    np.testing.assert_allclose(out[row, 0], want, rtol=1e-9, atol=1e-10)


def test_explanation_gives_each_factor_its_shapley_share(fitted):
    X, exp = fitted
    e = _with_products(exp)
    names = e["features"]["names"]
    F = _patients(X, e)
    Fimps = [impute_mean(e["imputer"], F)]
    if _fast.AVAILABLE:  # the scorer's imputation on the compiled path
        Fimps.append(impute_mean_fast(Imputer.of(e["imputer"]), F))
    comp = e["comparators"][0]
    for Fimp in Fimps:
        b0, c0 = explain(exp, F, Fimp, comp)
        b1, c1 = explain(e, F, Fimp, comp)
        ben = task_scores(e, F, comp)["benefit"]
        np.testing.assert_allclose(b1 + c1.sum(1), ben, rtol=0, atol=1e-9)  # exact: residual 0
        # independent: the two-player Shapley values of f(x_a, x_b) = -gamma (x_a - o_a)(x_b - o_b) / scale
        # (the benefit's sign) with the reference at the origins, from the value function itself
        want = c0.copy()
        for a, b, oa, ob, loc, scale, g in PRODUCTS:
            ia, ib = names.index(a), names.index(b)
            f = lambda xa, xb: -g * (xa - oa) * (xb - ob) / scale  # noqa: E731
            xa, xb = Fimp[:, ia], Fimp[:, ib]
            want[:, ia] += 0.5 * ((f(xa, ob) - f(oa, ob)) + (f(xa, xb) - f(oa, xb)))
            want[:, ib] += 0.5 * ((f(oa, xb) - f(oa, ob)) + (f(xa, xb) - f(xa, ob)))
            # the expected basis: the product's conditional covariance, split half each
            shift = -g * _cond_cov(e, F, a, b) / scale
            want[:, ia] += 0.5 * shift
            want[:, ib] += 0.5 * shift
        np.testing.assert_allclose(c1, want, rtol=0, atol=1e-9)
        assert np.ptp(b1 - b0) < 1e-9  # the products' constant parts: one shift of the base


def test_no_product_columns_no_change(fitted):
    """An export without product columns: the block plan has no products and the explanation's
    per-feature sums are the slot sums alone (the numbers before the kind existed)."""
    X, exp = fitted
    L = as_learner(exp)
    assert L.linear.modifier.plan.x_pos.size == 0
    F = _patients(X, exp)
    Fimp = impute_mean(exp["imputer"], F)
    _, c = explain(exp, F, Fimp, exp["comparators"][0])
    blk = L.linear.modifier
    th = L.linear.theta
    gamma = th[th.size - L.linear.n_mod:]
    # (the export takes the expected basis: a missing input's spline terms are their expectations)
    terms = (expect_columns(blk.plan, basis_compiled(blk.plan, Fimp), Fimp, cond_spread(exp["imputer"], F))
             - blk.center) * gamma
    per = np.zeros_like(c)
    for j, col in enumerate(blk.basis):
        per[:, col["feature"]] -= terms[:, j]
    # the prognostic terms cancel in a continuous benefit: the contributions are the modifier terms
    np.testing.assert_allclose(c, per, rtol=0, atol=1e-9)
