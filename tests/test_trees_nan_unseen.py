"""Tree members given a missing input their training rows always had (issue 23, i23n).

small_trials with ``missing`` leaves age, bmi, female and fear_avoidance missing at random in
training but never baseline_pain: the boosters split on baseline_pain with LightGBM missing type
None, where a NaN would be read as 0 (a default branch, never learned). The runtime replaces such a
NaN by the conditional mean E[X | observed] before the walk (predict.trees.tree_input), in the numpy
reference and the compiled program alike; features seen missing in training keep LightGBM's learned
NaN branch; complete rows are untouched."""
from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from predict import kernels as _fast
from predict.evaluate import benefit_h, point
from predict.impute import impute_mean
from predict.learner_model import as_learner
from predict.program import compile_program
from predict.reference import task_scores
from predict.trees import booster, booster_raw, nan_unseen, tree_input
from predict import fused as fz
from predict.features import feature_matrix
from training.learners.boosted import TLearner, XLearner
from training.simulate.small_trials import small_trials


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = small_trials(n_trials=8, n_per_arm=40, seed=5, noise=8.0, effect_mod=5.0, missing=0.15)
    with threadpool_limits(1):
        t = TLearner(n_boot=3).fit(X, y)
        x = XLearner(n_boot=3).fit(X, y)
    return X, {"t": t.to_export(), "x": x.to_export()}


def _rows(X, exp):
    """Complete rows of the training data as the model's feature matrix."""
    F = feature_matrix(exp["features"], X.head(120))
    return F[~np.isnan(F).any(axis=1)][:30]


def _col(exp, name):
    return list(exp["features"]["names"]).index(name)


def _dump_unseen(model) -> set:
    """Independent derivation: the features of splits whose dumped missing_type is "None"."""
    out = set()

    def walk(nd):
        if "split_feature" in nd:
            if nd["missing_type"] == "None":
                out.add(int(nd["split_feature"]))
            walk(nd["left_child"])
            walk(nd["right_child"])
    for t in booster(model).dump_model()["tree_info"]:
        walk(t["tree_structure"])
    return out


def test_nan_unseen_is_what_the_dump_says_and_names_the_never_missing_baseline(fitted):
    X, exps = fitted
    for exp in exps.values():
        L = as_learner(exp)
        jb, ja = _col(exp, "baseline_pain"), _col(exp, "age")
        for name, model in L.boosters.items():
            got = nan_unseen(model)
            assert set(got.tolist()) == _dump_unseen(model), name
            if name != "propensity":
                assert jb in got, (exp["kind"], name)  # every arm's trees split on the baseline
            assert ja not in got  # age was missing in training: its NaN branch was learned


def test_missing_never_seen_input_gets_its_conditional_mean_in_the_tree_walk(fitted):
    X, exps = fitted
    for exp in exps.values():
        L = as_learner(exp)
        F = _rows(X, exp)
        jb = _col(exp, "baseline_pain")
        G = F.copy()
        G[:, jb] = np.nan
        Gimp = impute_mean(L.imputer, G)
        filled = G.copy()
        filled[:, jb] = Gimp[:, jb]
        for name in ("active", "control") if exp["kind"] == "t_learner" else [n for n, _ in L.tau]:
            Gt = tree_input(L, name, G, Gimp)
            np.testing.assert_array_equal(Gt, filled)
            new = booster_raw(L.boosters[name], Gt)
            old = booster_raw(L.boosters[name], G)  # today's code: LightGBM reads the NaN as 0
            np.testing.assert_array_equal(new, booster_raw(L.boosters[name], filled))
            assert np.abs(new - old).max() > 1e-3, (exp["kind"], name)  # the old walk differed
        if exp["kind"] == "x_learner":  # the benefit trees as the reference evaluates them
            np.testing.assert_allclose(benefit_h(L, G, Gimp), benefit_h(L, filled, Gimp), rtol=0, atol=1e-12)


def test_inputs_seen_missing_keep_native_handling_and_complete_rows_are_untouched(fitted):
    X, exps = fitted
    exp = exps["x"]
    L = as_learner(exp)
    F = _rows(X, exp)
    # complete rows: the very same matrix
    Fimp = impute_mean(L.imputer, F)
    for name, _ in L.tau:
        assert tree_input(L, name, F, Fimp) is F
    ja = _col(exp, "age")
    G = F.copy()
    G[:, ja] = np.nan
    Gimp = impute_mean(L.imputer, G)
    for name, _ in L.tau:
        Gt = tree_input(L, name, G, Gimp)
        assert Gt is G  # age's NaN goes LightGBM's learned way
        assert np.isnan(Gt[:, ja]).all()
    ex, ben = point(exp, F)
    ex2, ben2 = point(exp, F.copy())
    for c in ben:
        np.testing.assert_array_equal(ben[c], ben2[c])


@pytest.mark.skipif(not _fast.AVAILABLE, reason="numba not installed: no fused program")
def test_compiled_program_fills_the_same_way(fitted):
    X, exps = fitted
    rng = np.random.default_rng(7)
    for exp in exps.values():
        F = _rows(X, exp)
        G = F.copy()
        G[:, _col(exp, "baseline_pain")] = np.nan
        H = F.copy()
        H[rng.random(H.shape) < 0.4] = np.nan  # mixed patterns: seen and never-seen inputs missing
        M = np.vstack([F, G, H])
        for comp in exp["comparators"]:
            prog = compile_program([exp], comp)
            assert prog is not None
            out = prog.run(M, threads=1)
            ref = task_scores(exp, M, comp)
            for key, row in (("benefit", fz.O_B), ("exercise", fz.O_A), ("comparator", fz.O_C),
                             ("var_missing", fz.O_VAR)):
                np.testing.assert_allclose(out[row, 0], ref[key], rtol=1e-9, atol=1e-9, err_msg=f"{exp['kind']} {key}")
