"""Per-arm intervals: which learners have them, and those of network-only comparators.

:func:`available` says whether a task's exported learner holds per-arm uncertainty (the
conditions of ``predict.uncertainty.arm_se``): the export records it in the manifest
(``arm_intervals``) so that the model card claims an interval only where the scorer gives one.

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

from predict.batch import task_scores
from predict.impute import impute_mean
from predict.linear import LINEAR_KINDS, linear_parts
from predict.uncertainty import arm_missing_variance

TREE_KINDS = ("t_learner", "x_learner", "dr_learner")


def available(exp: dict) -> bool:
    """True if the scorer gives per-arm 95% CIs for this export: continuous outcomes (the
    conditions of ``uncertainty.arm_se``) and binary outcomes of a single linear logistic learner with
    a bootstrap covariance (:func:`binary_parts`; stacks of binary learners: not available)."""
    if exp.get("outcome_type") == "binary":
        return _binary_single(exp)
    if exp.get("outcome_type") != "continuous":
        return False
    return _single(exp) if exp.get("kind") != "stacked" else all(_single(e) for e in exp["members"]["exports"])


def _single(exp: dict) -> bool:
    iv = exp.get("interval") or {}
    if exp.get("kind") in TREE_KINDS:
        return iv.get("method") == "varmodel" and isinstance(iv.get("arm_varmodel"), dict)
    lin = exp.get("linear")
    return exp.get("kind") in LINEAR_KINDS and lin is not None and lin.get("link") == "identity" \
        and iv.get("method") == "delta"


def _binary_single(exp: dict) -> bool:
    lin = exp.get("linear")
    iv = exp.get("interval") or {}
    return exp.get("kind") in LINEAR_KINDS and lin is not None and lin.get("link") == "logit" \
        and iv.get("method") == "delta" and iv.get("theta_cov") is not None


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def binary_parts(exp: dict, F: np.ndarray, comparator: str):
    """Per arm (exercise, then ``comparator``) the linear predictor's estimate and SD on the logit
    scale for a single linear logistic learner, or None if not :func:`available`: estimation SE
    sqrt(g' V g) (g the gradient in theta, V the trial-cluster bootstrap covariance
    ``interval.theta_cov``) combined with the spread over the conditional draws of missing inputs
    (their variance of P(recovery) mapped to the logit scale by the delta method, / (p(1-p))^2).
    The interval is formed on the logit scale and mapped back (:func:`binary_interval`), so it
    stays in 0-1 and is exact for the estimation part however wide (a p-scale delta interval is
    not: with 7 bootstrap replicates and p near 0.06 it understates the spread by a third)."""
    if not available(exp) or F.shape[0] == 0 or comparator not in exp["comparators"]:
        return None
    lin = exp["linear"]
    Fimp = impute_mean(exp["imputer"], F)
    eta, grad = linear_parts(lin, list(exp["comparators"]), Fimp)
    V = np.asarray(exp["interval"]["theta_cov"], float)
    _, va, vc = arm_missing_variance(exp, F, comparator)
    out = []
    for k, vm in (("__active__", va), (comparator, vc)):
        g = grad[k]
        e = eta[k]
        p = _expit(e)
        se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", g, V, g), 0.0, None))
        d = np.maximum(p * (1 - p), 1e-12)
        out.append((e, np.sqrt(se ** 2 + vm / d ** 2)))
    return out


def binary_interval(parts, z: float):
    """95% bounds (exercise low, high, comparator low, high) of P(recovery) from :func:`binary_parts`."""
    (ea, sa), (ec, sc) = parts
    return _expit(ea - z * sa), _expit(ea + z * sa), _expit(ec - z * sc), _expit(ec + z * sc)


def arm_bounds(exp: dict, F: np.ndarray, exercise: np.ndarray, benefit: np.ndarray,
               ci: tuple[np.ndarray, np.ndarray], z: float, groups=None):
    """(exercise low, exercise high, node low, node high) over patients, or None where the task's
    learner has no per-arm uncertainty (then the result says "no interval available")."""
    comps = list(exp.get("comparators") or [])
    if exp.get("outcome_type") != "continuous" or not comps or F.shape[0] == 0:
        return None
    r = task_scores(exp, F, comps[0], arms=True, groups=groups)
    if r.get("arm_se") is None:
        return None
    sd_a = np.sqrt(np.asarray(r["arm_se"][0], float) ** 2 + np.asarray(r["arm_var_missing"][0], float))
    se_b = (np.asarray(ci[1], float) - np.asarray(ci[0], float)) / (2 * z)
    node = exercise + benefit
    sd_c = sd_a + se_b
    lo_a, hi_a = np.clip(exercise - z * sd_a, 0, 100), np.clip(exercise + z * sd_a, 0, 100)
    lo_c, hi_c = np.clip(node - z * sd_c, 0, 100), np.clip(node + z * sd_c, 0, 100)
    return lo_a, hi_a, lo_c, hi_c
