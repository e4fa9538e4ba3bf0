"""A stack's benefit interval includes its members' disagreement (model-averaging variance, issue 23):
SE^2 = (sum_k w_k SE_k)^2 + sum_k v_k (b_k - b_bar)^2 (``interval.between = "mixture"``).

Checked against a hand computation for two members (v1 v2 (b1 - b2)^2), in the numpy reference
(``predict.uncertainty``, ``predict.runtime``) and in the compiled program (``predict.fused``);
a stack without the rule (older artifacts) and a stack whose members agree are scored exactly as
before; point estimates never move; an unknown rule is refused."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from predict import fused as fz, kernels, learner_model
from predict.evaluate import point
from predict.features import feature_matrix
from predict.impute import impute_mean
from predict.program import compile_program
from predict.reference import task_scores
from predict.runtime import predict_from_export
from predict.uncertainty import between_variance, estimation_se
from training.learners.boosted import DRLearner
from training.learners.effect_model import EffectModel
from training.learners.stacking import StackedLearner
from training.simulate.small_trials import small_trials

W = (0.7, 0.3)


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = small_trials(n_trials=6, n_per_arm=40, seed=5, noise=10.0, effect_mod=5.0, missing=0.1)
    with threadpool_limits(1):
        lin = EffectModel(n_boot=4).fit(X, y)
        dr = DRLearner(n_boot=4).fit(X, y)
        stack = StackedLearner.from_fitted([lin, dr], list(W), ["effect_model", "dr_learner"])
    return X, lin.to_export(), dr.to_export(), stack.export_


def _complete(X, exp):
    F = feature_matrix(exp["features"], X.head(40))
    return impute_mean(learner_model.as_learner(exp).imputer, F)  # complete rows: no missing-data variance


def _without_rule(exp):
    old = copy.deepcopy(exp)
    old["interval"].pop("between")
    return old


def test_two_members_equal_the_hand_computation(fitted):
    X, lin, dr, stack = fitted
    assert stack["interval"]["between"] == "mixture"
    F = _complete(X, stack)
    c = stack["comparators"][0]
    b1, b2 = point(lin, F)[1][c], point(dr, F)[1][c]  # the members' own benefits
    s1 = estimation_se(lin, F)[c]
    s2 = estimation_se(dr, F)[c]
    w1, w2 = W
    v1, v2 = w1 / (w1 + w2), w2 / (w1 + w2)
    hand_between = v1 * v2 * (b1 - b2) ** 2  # two members: sum_k v_k (b_k - b_bar)^2
    hand_se = np.sqrt((w1 * s1 + w2 * s2) ** 2 + hand_between)
    assert np.all(hand_between > 0), "the members must disagree somewhere for this test to mean anything"
    np.testing.assert_allclose(between_variance(stack, F)[c], hand_between, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(estimation_se(stack, F)[c], hand_se, rtol=1e-10)
    # the reported intervals (predict_from_export: CI = b -+ z SE) on rows with every input
    Xc = pd.DataFrame(F, columns=stack["features"]["names"], index=X.index[:40])
    new, old = (predict_from_export(e, Xc, intervals=True) for e in (stack, _without_rule(stack)))
    np.testing.assert_array_equal(new[f"benefit_vs_{c}"], old[f"benefit_vs_{c}"])  # points unchanged
    np.testing.assert_allclose(new[f"benefit_vs_{c}"], w1 * b1 + w2 * b2, rtol=1e-10, atol=1e-10)
    # SE = support factor x our SE (the same factor for both): the ratio is the hand computation's
    np.testing.assert_allclose(new[f"benefit_vs_{c}_se"] / old[f"benefit_vs_{c}_se"],
                               hand_se / (w1 * s1 + w2 * s2), rtol=1e-8)
    assert (new[f"benefit_vs_{c}_pi_high"] - new[f"benefit_vs_{c}_pi_low"]
            > old[f"benefit_vs_{c}_pi_high"] - old[f"benefit_vs_{c}_pi_low"]).all()


def test_three_members_give_the_weighted_variance(fitted):
    X, lin, dr, _ = fitted
    const = copy.deepcopy(lin)  # a third member: the effect model without its modifiers
    const["linear"]["theta"] = list(np.asarray(lin["linear"]["theta"])[: len(lin["linear"]["theta"]) - lin["linear"]["n_mod"]]) \
        + [0.0] * lin["linear"]["n_mod"]
    w = np.array([0.5, 0.3, 0.2])
    stack = StackedLearner.from_fitted([_Fixed(lin), _Fixed(dr), _Fixed(const)], list(w)).export_
    F = _complete(X, stack)
    for c in stack["comparators"]:
        b = np.array([point(e, F)[1][c] for e in (lin, dr, const)])
        ref = np.average((b - np.average(b, axis=0, weights=w)) ** 2, axis=0, weights=w)  # numpy's weighted variance
        np.testing.assert_allclose(between_variance(stack, F)[c], ref, rtol=1e-9, atol=1e-12)


class _Fixed:
    """A learner whose export is given (what StackedLearner.from_fitted reads)."""

    def __init__(self, exp):
        self.exp = exp

    def to_export(self):
        return copy.deepcopy(self.exp)


def test_a_stack_without_the_rule_is_scored_as_before(fitted):
    X, lin, dr, stack = fitted
    old = _without_rule(stack)
    F = _complete(X, stack)
    c = stack["comparators"][0]
    s1, s2 = estimation_se(lin, F)[c], estimation_se(dr, F)[c]
    np.testing.assert_array_equal(estimation_se(old, F)[c], W[0] * s1 + W[1] * s2)


def test_members_that_agree_change_nothing(fitted):
    X, lin, _, _ = fitted
    member = copy.deepcopy(lin)
    stack = {**{k: v for k, v in member.items() if k != "linear"}, "kind": "stacked",
             "members": {"weights": list(W), "names": ["a", "b"], "exports": [member, copy.deepcopy(lin)]},
             "interval": {"method": "stack", "tau": dict(lin["interval"]["tau"]), "between": "mixture"}}
    F = feature_matrix(lin["features"], X.head(40))  # with its missing inputs
    for c in lin["comparators"]:
        assert not between_variance(stack, F)[c].any()
        new = task_scores(stack, F, c)
        old = task_scores(_without_rule(stack), F, c)
        for k in ("benefit", "se_est", "var_missing"):
            np.testing.assert_array_equal(new[k], old[k])


def test_an_unknown_rule_is_refused(fitted):
    _, _, _, stack = fitted
    bad = copy.deepcopy(stack)
    bad["interval"]["between"] = "max"
    with pytest.raises(ValueError, match="between='max' is not known"):
        learner_model.build(bad)
    single = copy.deepcopy(fitted[1])
    single["interval"]["between"] = "mixture"  # a rule for stacks only
    with pytest.raises(ValueError, match="stacks only"):
        learner_model.build(single)


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed: no compiled program")
def test_the_compiled_program_adds_the_same_disagreement(fitted):
    X, lin, dr, stack = fitted
    F = feature_matrix(stack["features"], X.head(40))
    F[::3, 0] = np.nan  # some rows with a missing input (the draws' variance is added after)
    for c in stack["comparators"]:
        outs = {}
        for name, exp in (("new", stack), ("old", _without_rule(stack)), ("single", lin)):
            prog = compile_program([learner_model.build(copy.deepcopy(exp))], c)
            assert prog is not None
            outs[name] = prog.run(F, threads=1)[:, 0]
            ref = task_scores(exp, F, c)
            np.testing.assert_allclose(outs[name][fz.O_SE], ref["se_est"], rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(outs[name][fz.O_B], ref["benefit"], rtol=1e-10, atol=1e-10)
        new, old = outs["new"], outs["old"]
        for row in (fz.O_A, fz.O_C, fz.O_B, fz.O_VAR):  # points and the draws' variance: identical
            np.testing.assert_array_equal(new[row], old[row])
        vb = between_variance(stack, F)[c]
        np.testing.assert_allclose(new[fz.O_SE] ** 2 - old[fz.O_SE] ** 2, vb, rtol=1e-8, atol=1e-10)
        assert (new[fz.O_PIHI] - new[fz.O_PILO] > old[fz.O_PIHI] - old[fz.O_PILO]).all()


def test_the_rule_can_be_switched_off_for_a_benchmark(fitted, monkeypatch):
    """StackedLearner.between_rule = None (bench_learners --stack-no-between, s12v): the export states
    no rule and its SE is the members' SEs added with the weights, as a stack without the rule."""
    X, lin, dr, stack = fitted

    class Fitted:  # a fitted member as the stack sees it (its export)
        def __init__(self, exp):
            self.exp = exp

        def to_export(self):
            return self.exp

    monkeypatch.setattr(StackedLearner, "between_rule", None)
    off = StackedLearner.from_fitted([Fitted(lin), Fitted(dr)], list(W), ["effect_model", "dr_learner"]).export_
    assert off["interval"]["between"] is None
    F = _complete(X, stack)
    c = stack["comparators"][0]
    within = W[0] * estimation_se(lin, F)[c] + W[1] * estimation_se(dr, F)[c]
    np.testing.assert_allclose(estimation_se(off, F)[c], within, rtol=1e-12)
    assert (estimation_se(stack, F)[c] > within + 1e-9).any()  # the default rule adds the disagreement
