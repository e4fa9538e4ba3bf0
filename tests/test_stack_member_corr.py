"""A stack's estimation SE from its members' joint covariance (issue 23, session 13, s13w):
SE_within^2 = sum_jk w_j w_k R_jk SE_j SE_k, R the members' error correlation from the IECV folds'
leave-one-trial-out refits (``training.learners.member_corr``, exported as ``interval.member_corr``).

Checked: the jackknife correlation against a hand computation (np.cov of the replicates, pooled),
its recovery of a known correlation, the shrinkage towards 1 with few folds; the scored SE against
the hand formula (numpy reference) and the compiled program (1e-9); a stack without the field is
scored exactly as before and R = all ones equals the old sum; malformed fields are refused; the
IECV carries the correlation when asked and ``train`` exports it only with ``stack_se="joint"``."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from predict import fused as fz, kernels, learner_model
from predict.features import feature_matrix
from predict.impute import impute_mean
from predict.program import compile_program
from predict.reference import task_scores
from predict.uncertainty import between_variance, estimation_se
from training.learners.boosted import DRLearner
from training.learners.effect_model import ConstantEffect, EffectModel
from training.learners.member_corr import (MIN_FOLDS, jackknife_corr, member_correlations, shrink_to_one,
                                           submatrix)
from training.learners.stacking import StackedLearner
from training.simulate.small_trials import small_trials

W = (0.6, 0.4)


def test_jackknife_corr_equals_the_pooled_hand_covariance():
    rng = np.random.default_rng(3)
    J, n, K = 9, 7, 3
    reps = rng.normal(size=(J, n, K)) + rng.normal(size=(1, n, K)) * 5  # patient-specific levels
    reps[:, :, 1] += 0.8 * reps[:, :, 0]
    R, used = jackknife_corr(reps)
    C = sum(np.cov(reps[:, i, :].T, ddof=0) * J for i in range(n))  # sum over patients of centred cross-products
    d = np.sqrt(np.diag(C))
    np.testing.assert_allclose(R, C / np.outer(d, d), rtol=1e-12)
    assert used == J and np.allclose(np.diag(R), 1.0) and R[0, 1] > 0.4
    reps[2, 3, 1] = np.nan  # one missing prediction: that patient's fold left out for that patient only
    R2, used2 = jackknife_corr(reps)
    keep = [f for f in range(J) if f != 2]
    C2 = sum(np.cov(reps[(keep if i == 3 else slice(None)), i, :].T, ddof=0) * (J - 1 if i == 3 else J) for i in range(n))
    d2 = np.sqrt(np.diag(C2))
    np.testing.assert_allclose(R2, C2 / np.outer(d2, d2), rtol=1e-12)
    assert used2 == J


def test_jackknife_corr_recovers_a_known_correlation():
    rng = np.random.default_rng(11)
    J, n, rho = 400, 30, 0.35
    z = rng.normal(size=(J, 1, 2))
    z[..., 1] = rho * z[..., 0] + np.sqrt(1 - rho ** 2) * z[..., 1]
    # the fold's error shared by the patients, scaled differently per member, around patient-specific levels
    reps = z * np.array([1.0, 3.0]) + rng.normal(size=(1, n, 2)) * 10 + rng.normal(scale=0.05, size=(J, n, 2))
    R, _ = jackknife_corr(reps)
    assert abs(R[0, 1] - rho) < 0.1  # SE of a correlation from 400 replicates ~ 0.045


def test_shrinkage_goes_to_one_with_few_folds_and_stays_a_correlation():
    R = np.array([[1.0, 0.2, 0.5], [0.2, 1.0, 0.4], [0.5, 0.4, 1.0]])
    Rs, lam = shrink_to_one(R, MIN_FOLDS - 1)
    assert lam == 1.0 and np.all(Rs == 1.0)
    prev = 1.0
    for J in (6, 12, 30, 200):
        Rs, lam = shrink_to_one(R, J)
        assert 0 < lam < prev  # less shrinkage with more folds
        prev = lam
        assert np.allclose(np.diag(Rs), 1) and np.all(Rs >= R - 1e-12) and np.linalg.eigvalsh(Rs).min() > -1e-12
        rbar = R[~np.eye(3, dtype=bool)].mean()
        np.testing.assert_allclose(Rs[~np.eye(3, dtype=bool)].mean(), np.tanh(np.arctanh(rbar) + 1 / np.sqrt(J - 3)))


def test_member_correlations_and_submatrix():
    rng = np.random.default_rng(5)
    folds = [{"a": {"x": rng.normal(size=4), "y": rng.normal(size=4)}, "b": {"x": rng.normal(size=4)}}
             for _ in range(8)]
    mc = member_correlations(folds, ["a", "b", "c"])
    assert mc["learners"] == ["a", "b"] and mc["folds"] == 8 and set(mc["corr"]) == {"x", "y"}
    assert np.all(mc["corr"]["y"] == 1.0)  # b never predicts y: nothing to estimate, rho = 1
    sub = submatrix(mc, ["b", "a"])
    np.testing.assert_allclose(sub["x"], mc["corr"]["x"][::-1, ::-1])
    assert submatrix(mc, ["a", "c"]) is None


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = small_trials(n_trials=6, n_per_arm=40, seed=5, noise=10.0, effect_mod=5.0, missing=0.1)
    with threadpool_limits(1):
        lin = EffectModel(n_boot=4).fit(X, y)
        dr = DRLearner(n_boot=4).fit(X, y)
    comps = lin.to_export()["comparators"]
    corr = {c: np.array([[1.0, 0.3 + 0.1 * i], [0.3 + 0.1 * i, 1.0]]) for i, c in enumerate(comps)}
    joint = StackedLearner.from_fitted([lin, dr], list(W), ["effect_model", "dr_learner"], member_corr=corr)
    plain = StackedLearner.from_fitted([lin, dr], list(W), ["effect_model", "dr_learner"])
    return X, lin.to_export(), dr.to_export(), joint.export_, plain.export_, corr


def test_the_scored_se_is_the_hand_quadratic_form(fitted):
    X, lin, dr, joint, plain, corr = fitted
    assert "member_corr" in joint["interval"] and "member_corr" not in plain["interval"]
    F = impute_mean(learner_model.as_learner(joint).imputer, feature_matrix(joint["features"], X.head(40)))
    for c in joint["comparators"]:
        s1, s2 = W[0] * estimation_se(lin, F)[c], W[1] * estimation_se(dr, F)[c]
        r = corr[c][0, 1]
        vb = between_variance(joint, F)[c]
        hand = np.sqrt(s1 ** 2 + s2 ** 2 + 2 * r * s1 * s2 + vb)
        np.testing.assert_allclose(estimation_se(joint, F)[c], hand, rtol=1e-10)
        old = estimation_se(plain, F)[c]
        np.testing.assert_allclose(old, np.sqrt((s1 + s2) ** 2 + vb), rtol=1e-10)
        assert (estimation_se(joint, F)[c] < old - 1e-9).any()
        # R = all ones is the old rule
        ones = copy.deepcopy(joint)
        ones["interval"]["member_corr"] = {c: [[1.0, 1.0], [1.0, 1.0]]}
        np.testing.assert_allclose(estimation_se(ones, F)[c], old, rtol=1e-12)
        # a stack without the field: bit for bit the old numbers
        np.testing.assert_array_equal(estimation_se(plain, F)[c], old)


def test_malformed_fields_are_refused(fitted):
    _, lin, _, joint, _, _ = fitted
    c = joint["comparators"][0]
    for bad, msg in (([[1.0, 0.5], [0.4, 1.0]], "not a correlation"), ([[1.0, 2.0], [2.0, 1.0]], "not a correlation"),
                     ([[1.0]], "1 x 1 for a stack of 2")):
        e = copy.deepcopy(joint)
        e["interval"]["member_corr"] = {c: bad}
        with pytest.raises(ValueError, match=msg):
            learner_model.build(e)
    single = copy.deepcopy(lin)
    single["interval"]["member_corr"] = {c: [[1.0]]}
    with pytest.raises(ValueError, match="stacks only"):
        learner_model.build(single)
    with pytest.raises(ValueError, match="symmetric"):
        StackedLearner.from_fitted([_Fixed(lin), _Fixed(lin)], list(W), member_corr={c: np.eye(3)})


class _Fixed:
    def __init__(self, exp):
        self.exp = exp

    def to_export(self):
        return copy.deepcopy(self.exp)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed: no compiled program")
def test_the_compiled_program_equals_the_reference(fitted):
    X, _, _, joint, plain, _ = fitted
    F = feature_matrix(joint["features"], X.head(40))
    F[::3, 0] = np.nan  # some rows with a missing input
    for c in joint["comparators"]:
        outs = {}
        for name, exp in (("joint", joint), ("plain", plain)):
            prog = compile_program([learner_model.build(copy.deepcopy(exp))], c)
            assert prog is not None
            outs[name] = prog.run(F, threads=1)[:, 0]
            ref = task_scores(exp, F, c)
            np.testing.assert_allclose(outs[name][fz.O_SE], ref["se_est"], rtol=1e-9, atol=1e-10)
        for row in (fz.O_A, fz.O_C, fz.O_B, fz.O_VAR):  # points and the draws' variance: identical
            np.testing.assert_array_equal(outs["joint"][row], outs["plain"][row])
        assert (outs["joint"][fz.O_SE] < outs["plain"][fz.O_SE] - 1e-9).any()


def test_iecv_carries_the_member_correlation():
    from training.iecv import run_iecv

    X, y, _ = small_trials(n_trials=7, n_per_arm=30, seed=2, noise=8.0, effect_mod=4.0)
    learners = {"constant": lambda: ConstantEffect(n_boot=0), "effect_model": lambda: EffectModel(n_boot=0)}
    df = X.assign(_y=y)
    with threadpool_limits(1):
        res = run_iecv(df, "_y", learners, "continuous", metrics=False, ref_rows=50)
        plain = run_iecv(df, "_y", learners, "continuous", metrics=False)
    mc = res.member_corr
    assert plain.member_corr is None and mc["learners"] == ["constant", "effect_model"] and mc["folds"] == len(res.folds) == 5
    for c, R in mc["corr"].items():
        raw = mc["raw"][c]
        assert R.shape == (2, 2) and np.allclose(np.diag(R), 1) and -1 <= raw[0, 1] < R[0, 1] <= 1
    # the reference predictions do not change the held-out predictions
    np.testing.assert_array_equal(res.predictions["benefit"].to_numpy(), plain.predictions["benefit"].to_numpy())
