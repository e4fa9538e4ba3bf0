"""Per-arm intervals for comparators scored by the one-stage IPD network model.

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

from predict import runtime as rt


def arm_bounds(exp: dict, F: np.ndarray, exercise: np.ndarray, benefit: np.ndarray,
               ci: tuple[np.ndarray, np.ndarray], z: float, groups=None):
    """(exercise low, exercise high, node low, node high) over patients, or None where the task's
    learner has no per-arm uncertainty (then the result says "no interval available")."""
    comps = list(exp.get("comparators") or [])
    if exp.get("outcome_type") != "continuous" or not comps or F.shape[0] == 0:
        return None
    r = rt.task_scores(exp, F, comps[0], arms=True, groups=groups)
    if r.get("arm_se") is None:
        return None
    sd_a = np.sqrt(np.asarray(r["arm_se"][0], float) ** 2 + np.asarray(r["arm_var_missing"][0], float))
    se_b = (np.asarray(ci[1], float) - np.asarray(ci[0], float)) / (2 * z)
    node = exercise + benefit
    sd_c = sd_a + se_b
    lo_a, hi_a = np.clip(exercise - z * sd_a, 0, 100), np.clip(exercise + z * sd_a, 0, 100)
    lo_c, hi_c = np.clip(node - z * sd_c, 0, 100), np.clip(node + z * sd_c, 0, 100)
    return lo_a, hi_a, lo_c, hi_c
