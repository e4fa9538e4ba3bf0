"""The numpy reference: the expected outcome per class and the benefit for every learner kind
(the estimand, written once; the compiled program in :mod:`predict.program` / :mod:`predict.fused`
is held equal to it by tests).

For a patient with covariates x: the expected outcome under each class in an *average* trial
(trial effects at their weighted mean) and the benefit of the active class vs each comparator,
positive = active better: continuous E[Y|c,x] - E[Y|active,x]; binary P(Y=1|active,x) - P(Y=1|c,x).
Linear parts see the conditional-mean imputation ``Fimp`` (those exported with ``missing`` =
"expected": the expected basis E[B(X) | observed], :func:`linear_spread`); trees see ``F`` with NaN
(their native missing-value rule; a feature a booster never saw missing gets its conditional mean,
:func:`predict.trees.tree_input`) or ``Fimp`` (``tree_missing`` = ``impute``).
"""
from __future__ import annotations

import numpy as np

from predict.expected_basis import Spread, cond_spread
from predict.impute import impute_mean
from predict.learner_model import EffectTreeLearner, Learner, LinearLearner, StackedLearner, TLearner, as_learner
from predict.linear import block_matrix, linear_eta, theta_split
from predict.numeric import mean_fn
from predict.trees import raw_score, tree_input


def expected(exp: Learner | dict, F: np.ndarray, Fimp: np.ndarray, active_only: bool = False) -> dict:
    """Expected outcome per class (keys: comparators and '__active__') at complete Fimp
    (linear parts) and raw F (trees; native NaN handling). ``active_only``: the
    '__active__' entry alone (what X/DR learners need from their nuisance T-learner).
    ``exp``: a typed learner (:mod:`predict.learner_model`) or a learner export."""
    L = as_learner(exp)
    return _EXPECTED[type(L)](L, F, Fimp, active_only)


def linear_spread(L: LinearLearner, F: np.ndarray) -> Spread | None:
    """The conditional distribution of the missing inputs of F's rows (:func:`predict.expected_basis.cond_spread`)
    if the learner's linear part takes the expected basis and something is missing; else None."""
    return cond_spread(L.imputer, F) if L.linear.expected else None


def _expected_linear(L: LinearLearner, F, Fimp, active_only):
    eta = linear_eta(L.linear, L.comparators, Fimp, linear_spread(L, F))
    f = mean_fn(L.linear.link)
    return {k: f(v) for k, v in eta.items()}


def _expected_t(L: TLearner, F, Fimp, active_only):
    lin = L.linear
    eta = linear_eta(lin, L.comparators, Fimp, linear_spread(L, F))
    r1 = raw_score(L, "active", tree_input(L, "active", F, Fimp))
    f = mean_fn(lin.link)
    out = {"__active__": f(eta["__active__"] + r1)}
    if active_only:
        return out
    r0 = raw_score(L, "control", tree_input(L, "control", F, Fimp))
    for c in L.comparators:
        out[c] = f(eta[c] + r0)
    return out


def _expected_effect_trees(L: EffectTreeLearner, F, Fimp, active_only):
    base = _expected_t(L.nuisance, F, Fimp, True)
    b = benefit_h(L, F, Fimp)
    out = {"__active__": base["__active__"]}
    for c in L.comparators:
        bc = L.class_benefit[c] + b
        out[c] = base["__active__"] + bc if L.continuous else np.clip(base["__active__"] - bc, 0, 1)
    return out


def _expected_stacked(L: StackedLearner, F, Fimp, active_only):
    w, wn = L.weights, L.weights_normalised
    subs = [_EXPECTED[type(e)](e, F, Fimp, False) for e in L.members]
    bens = [benefit_from_expected(e, s) for e, s in zip(L.members, subs)]
    act = sum(wi * s["__active__"] for wi, s in zip(wn, subs))
    out = {"__active__": act}
    for c in L.comparators:
        bc = sum(wi * b[c] for wi, b in zip(w, bens))
        out[c] = act + bc if L.continuous else np.clip(act - bc, 0, 1)
    return out


_EXPECTED = {LinearLearner: _expected_linear, TLearner: _expected_t, EffectTreeLearner: _expected_effect_trees,
             StackedLearner: _expected_stacked}


def benefit_h(L: EffectTreeLearner, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    """The benefit boosters' weighted raw scores of an X/DR learner (X: e tau0 + (1 - e) tau1)."""
    (name, w), *rest = L.tau
    r = raw_score(L, name, tree_input(L, name, F, Fimp))
    out = r if not rest else w * r
    for name, w in rest:
        out = out + w * raw_score(L, name, tree_input(L, name, F, Fimp))
    return out


def benefit_from_expected(exp: Learner | dict, ex: dict) -> dict:
    a = ex["__active__"]
    comps = exp.comparators if isinstance(exp, Learner) else exp["comparators"]
    cont = (exp.outcome_type if isinstance(exp, Learner) else exp["outcome_type"]) == "continuous"
    if cont:
        return {c: ex[c] - a for c in comps}
    return {c: a - ex[c] for c in comps}


def point(exp: Learner | dict, F: np.ndarray, Fimp: np.ndarray | None = None) -> tuple[dict, dict]:
    """(expected per class, benefit per comparator) at the patient's features F (NaN =
    missing; linear parts use the conditional-mean imputation, trees their native NaN rule, or
    the conditional mean for a feature the booster never saw missing).
    ``Fimp``: ``impute_mean(learner.imputer, F)`` if the caller has it already."""
    L = as_learner(exp)
    if Fimp is None:
        Fimp = impute_mean(L.imputer, F)
    ex = expected(L, F, Fimp)
    return ex, benefit_from_expected(L, ex)


def benefit_only(exp: Learner | dict, F: np.ndarray, Fimp: np.ndarray, comparator: str) -> np.ndarray:
    """The benefit vs ``comparator`` alone (what :func:`point` gives, up to floating-point
    rounding), skipping the parts that cancel for continuous outcomes (prognostic terms, the
    active-arm outcome of X/DR learners). Binary outcomes go through :func:`expected`."""
    L = as_learner(exp)
    if not L.continuous:
        ex = expected(L, F, Fimp)
        return ex["__active__"] - ex[comparator]
    return _BENEFIT[type(L)](L, F, Fimp, comparator)


def _benefit_linear(L: LinearLearner, F, Fimp, comparator):
    lin = L.linear
    if lin.link != "identity":
        ex = expected(L, F, Fimp)
        return ex[comparator] - ex["__active__"]
    comps = L.comparators
    theta, b0, offs, beta, gamma = theta_split(lin, len(comps))
    b = np.full(F.shape[0], offs[list(comps).index(comparator)])
    if gamma.size:
        b = b - block_matrix(lin.modifier, Fimp, spread=linear_spread(L, F)) @ gamma
    return b


def _benefit_t(L: TLearner, F, Fimp, comparator):
    b = _benefit_linear(L, F, Fimp, comparator)
    if L.linear.link != "identity":  # (through expected: the trees are in it)
        return b
    return (b + raw_score(L, "control", tree_input(L, "control", F, Fimp))
            - raw_score(L, "active", tree_input(L, "active", F, Fimp)))


def _benefit_effect_trees(L: EffectTreeLearner, F, Fimp, comparator):
    return L.class_benefit[comparator] + benefit_h(L, F, Fimp)


def _benefit_stacked(L: StackedLearner, F, Fimp, comparator):
    return sum(w * benefit_only(e, F, Fimp, comparator) for w, e in zip(L.weights, L.members))


_BENEFIT = {LinearLearner: _benefit_linear, TLearner: _benefit_t, EffectTreeLearner: _benefit_effect_trees,
            StackedLearner: _benefit_stacked}
