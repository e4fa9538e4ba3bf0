"""Per-arm intervals: which learners have them, and those of network-only comparators.

:func:`available` says whether a task's exported learner holds per-arm uncertainty (the
conditions of ``predict.uncertainty.arm_se``): the export records it in the manifest
(``arm_intervals``) so that the model card claims an interval only where the scorer gives one.

Binary outcomes (:func:`binary_parts`): the estimand is P(recovery | arm, x) in an average trial
(trial effects at their weighted mean), the probability the learner predicts. A single logistic
learner: delta method on the logit scale with its bootstrap covariance. A stack (any mix of
logistic and tree members): each member's SE of the arm probability (logistic: p(1-p) times the
logit-scale delta SE; tree learners: the bootstrap's per-arm variance model ``arm_varmodel``)
added with the stack's weights as if perfectly correlated (the convention of the continuous
stacks in ``predict.uncertainty.arm_se``: conservative, as |cov| <= SD_i SD_j), plus the variance
over conditional draws of missing inputs; the 95% interval is formed on the logit scale around
the stack's probability (SD / p(1-p), delta method) so it stays in 0-1. Coverage of the true
average-trial probability on the simulator: ``benchmarks/bench_binary_stack.py``.

For network-only comparators:

For a network-only node the scorer predicts the outcome under exercise with the task's learner
and the outcome under the node as exercise + the network model's benefit (predict/network.py).
The exercise arm's 95% CI is the learner's own (estimation SE per arm plus the missing-input
variance, as for the learners' comparators). The node arm's SD is bounded by SD(exercise) +
SE(benefit): the two come from different models fitted on overlapping trials, their covariance
is not in the artifact, and |cov| <= SD_a SD_b makes the sum the largest SD the node arm can have
(perfect positive correlation: conservative, the same convention as the stack's member SEs).
"""
from __future__ import annotations

import numpy as np

from predict.evaluate import expected, linear_spread
from predict.reference import task_scores
from predict.impute import impute_mean
from predict.learner_model import EffectTreeLearner, Learner, LinearLearner, StackedLearner, TLearner, as_learner
from predict.linear import linear_parts
from predict.recovery_structure import Structural, structural_variance, widened
from predict.uncertainty import arm_missing_variance, varmodel_design


def available(exp: Learner | dict) -> bool:
    """True if the scorer gives per-arm 95% CIs for this learner: continuous outcomes (the
    conditions of ``uncertainty.arm_se``) and binary outcomes of a linear logistic learner with
    a bootstrap covariance, a tree learner with a per-arm bootstrap variance model, or a stack of
    such members (:func:`binary_parts`)."""
    L = as_learner(exp)
    if L.outcome_type not in ("continuous", "binary"):
        return False
    return all(_AVAILABLE[type(e)](e, L.continuous) for e in L.stack[1])


def _trees_available(L: Learner, continuous: bool) -> bool:
    iv = L.interval
    return iv is not None and iv.method == "varmodel" and iv.arm_varmodel is not None


def _linear_available(L: LinearLearner, continuous: bool) -> bool:
    iv = L.interval
    if iv is None or iv.method != "delta":
        return False
    return L.linear.link == "identity" if continuous else (L.linear.link == "logit" and iv.theta_cov is not None)


_AVAILABLE = {LinearLearner: _linear_available, TLearner: _trees_available, EffectTreeLearner: _trees_available,
              StackedLearner: lambda L, continuous: False}  # (a stack inside a stack: not exported)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(q / (1 - q))


def binary_member_se(exp: Learner | dict, F: np.ndarray, comparator: str):
    """(SE under exercise, SE under ``comparator``) of one binary member's predicted probability
    from estimation (no missing-input part): p(1-p) sqrt(g' V g) for a logistic learner (delta
    method, V the trial-cluster bootstrap covariance), sqrt(exp(U w)) of the bootstrap's per-arm
    variance model for a tree learner. ``F``: raw features (NaN = missing)."""
    L = as_learner(exp)
    Fimp = impute_mean(L.imputer, F)
    if L.has_trees:  # a tree learner: its per-arm variance model
        U = varmodel_design(L, F, Fimp)
        vm = L.interval.arm_varmodel
        return tuple(np.sqrt(np.exp(U @ vm[k])) for k in ("__active__", comparator))
    eta, grad = linear_parts(L.linear, list(L.comparators), Fimp, linear_spread(L, F))
    V = L.interval.theta_cov
    out = []
    for k in ("__active__", comparator):
        p = _expit(eta[k])
        se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", grad[k], V, grad[k]), 0.0, None))
        out.append(p * (1 - p) * se)
    return tuple(out)


def _draw_variances(L: Learner, F: np.ndarray, comparator: str, structural: Structural | None):
    """Each arm's variance of P(recovery) over the missing-input draws: the learner's own, widened
    by a derived outcome's structural allowance (:mod:`predict.recovery_structure`) if it has one."""
    _, va, vc = arm_missing_variance(L, F, comparator)
    if structural is None:
        return va, vc
    _, ra, rc = structural_variance(L, structural, F, comparator)
    return widened(va, ra), widened(vc, rc)


def stack_binary_parts(exp: dict, F: np.ndarray, comparator: str, structural: Structural | None = None):
    """:func:`binary_parts` of a stack (a single tree learner: a stack of one): per arm, the logit
    of the stack's probability and its SD on the logit scale. The stack's probabilities: exercise sum_i v_i a_i (v = weights / their sum), the
    comparator exercise - sum_i w_i (a_i - c_i); their SEs the same combinations of the members'
    SEs in absolute value (perfect correlation), exercise sum v_i SE(a_i), comparator
    sum |v_i - w_i| SE(a_i) + w_i SE(c_i); plus the missing-input variance; mapped to the logit
    scale by the delta method."""
    L = as_learner(exp)
    w, members = L.stack
    v = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
    parts = [binary_member_se(e, F, comparator) for e in members]
    se_a = sum(vi * p[0] for vi, p in zip(v, parts))
    se_c = sum(abs(vi - wi) * p[0] + wi * p[1] for vi, wi, p in zip(v, w, parts))
    ex = expected(L, F, impute_mean(L.imputer, F))
    va, vc = _draw_variances(L, F, comparator, structural)
    out = []
    for k, se, vm in (("__active__", se_a, va), (comparator, se_c, vc)):
        p = np.asarray(ex[k], float)
        d = np.maximum(p * (1 - p), 1e-12)
        out.append((_logit(p), np.sqrt(se ** 2 + vm) / d))
    return out


def binary_parts(exp: dict, F: np.ndarray, comparator: str, structural: Structural | None = None):
    """Per arm (exercise, then ``comparator``) the estimate and SD on the logit scale, or None if
    not :func:`available`. Stacks and tree learners: :func:`stack_binary_parts`. A single linear
    logistic learner: the linear predictor with estimation SE
    sqrt(g' V g) (g the gradient in theta, V the trial-cluster bootstrap covariance
    ``interval.theta_cov``) combined with the spread over the conditional draws of missing inputs
    (their variance of P(recovery) mapped to the logit scale by the delta method, / (p(1-p))^2).
    The interval is formed on the logit scale and mapped back (:func:`binary_interval`), so it
    stays in 0-1 and is exact for the estimation part however wide (a p-scale delta interval is
    not: with 7 bootstrap replicates and p near 0.06 it understates the spread by a third).
    ``structural``: a derived outcome's structural allowance (the task's, :mod:`predict.recovery_structure`):
    each arm's draw variance is max(own, structural)."""
    L = as_learner(exp)
    if not available(L) or F.shape[0] == 0 or comparator not in L.comparators:
        return None
    if not _logit_scale_se(L):  # a stack or a tree learner (a stack of one)
        return stack_binary_parts(L, F, comparator, structural)
    Fimp = impute_mean(L.imputer, F)
    eta, grad = linear_parts(L.linear, list(L.comparators), Fimp, linear_spread(L, F))
    V = L.interval.theta_cov
    va, vc = _draw_variances(L, F, comparator, structural)
    out = []
    for k, vm in (("__active__", va), (comparator, vc)):
        g = grad[k]
        e = eta[k]
        p = _expit(e)
        se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", g, V, g), 0.0, None))
        d = np.maximum(p * (1 - p), 1e-12)
        out.append((e, np.sqrt(se ** 2 + vm / d ** 2)))
    return out


def _logit_scale_se(L: Learner) -> bool:
    """True for a single linear logistic learner (its estimation SE is on the logit scale); False
    for a stack or a tree learner (probability scale, :func:`stack_binary_parts`)."""
    return type(L) is LinearLearner


def binary_parts_from(exp: Learner | dict, a: np.ndarray, c: np.ndarray, se_a: np.ndarray, se_c: np.ndarray,
                      va: np.ndarray, vc: np.ndarray):
    """:func:`binary_parts` from the compiled program's per-arm numbers (``predict.fused``): the
    arms' probabilities ``a``/``c``, their estimation SEs (a single logistic learner: logit
    scale; a stack or tree learner: probability scale, the members' SEs already combined with
    the weights) and their variances over the missing-input draws. The same arithmetic as
    :func:`stack_binary_parts` and :func:`binary_parts` after their member loops, so the numbers
    equal the numpy reference's (tests/test_binary_arms_compiled.py, 1e-10)."""
    logit_se = _logit_scale_se(as_learner(exp))
    out = []
    for p, se, vm in ((a, se_a, va), (c, se_c, vc)):
        p = np.asarray(p, float)
        d = np.maximum(p * (1 - p), 1e-12)
        if not logit_se:
            out.append((_logit(p), np.sqrt(se ** 2 + vm) / d))
        else:
            out.append((_logit(p), np.sqrt(se ** 2 + vm / d ** 2)))
    return out


def binary_interval(parts, z: float):
    """95% bounds (exercise low, high, comparator low, high) of P(recovery) from :func:`binary_parts`."""
    (ea, sa), (ec, sc) = parts
    return _expit(ea - z * sa), _expit(ea + z * sa), _expit(ec - z * sc), _expit(ec + z * sc)


def arm_bounds(exp: Learner | dict, F: np.ndarray, exercise: np.ndarray, benefit: np.ndarray,
               ci: tuple[np.ndarray, np.ndarray], z: float, groups=None, sd_exercise=None):
    """(exercise low, exercise high, node low, node high) over patients, or None where the task's
    learner has no per-arm uncertainty (then the result says "no interval available").
    ``sd_exercise``: the exercise arm's SD (estimation and missing inputs) if the caller has it
    (the compiled program gives it), else computed with the numpy reference."""
    L = as_learner(exp)
    comps = list(L.comparators)
    if not L.continuous or not comps or F.shape[0] == 0:
        return None
    if sd_exercise is not None:
        sd_a = np.asarray(sd_exercise, float)
    else:
        r = task_scores(L, F, comps[0], arms=True)
        if r.get("arm_se") is None:
            return None
        sd_a = np.sqrt(np.asarray(r["arm_se"][0], float) ** 2 + np.asarray(r["arm_var_missing"][0], float))
    se_b = (np.asarray(ci[1], float) - np.asarray(ci[0], float)) / (2 * z)
    node = exercise + benefit
    sd_c = sd_a + se_b
    lo_a, hi_a = np.clip(exercise - z * sd_a, 0, 100), np.clip(exercise + z * sd_a, 0, 100)
    lo_c, hi_c = np.clip(node - z * sd_c, 0, 100), np.clip(node + z * sd_c, 0, 100)
    return lo_a, hi_a, lo_c, hi_c
