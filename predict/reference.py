"""The numpy reference's numbers for one task and one comparator, in one call: what the compiled
program (:mod:`predict.program`, :mod:`predict.fused`) computes per task, written with the
reference functions themselves (:mod:`predict.evaluate`, :mod:`predict.uncertainty`). It is the
specification the program is held to (tests/test_two_paths.py, 1e-10) and the scoring path where
numba is unavailable or a model does not compile (logged and shown in ``/v1/model``).
"""
from __future__ import annotations

import numpy as np

from predict.evaluate import expected
from predict.impute import impute_mean
from predict.learner_model import Learner, as_learner
from predict.recovery_structure import Structural, structural_variance, widened
from predict.uncertainty import arm_missing_variance, arm_se, estimation_se, missing_variance_fast


def task_scores(exp: Learner | dict, F: np.ndarray, comparator: str, arms: bool = False,
                structural: Structural | None = None) -> dict:
    """For the patients F (NaN = missing): ``exercise``, ``comparator`` (expected outcomes),
    ``benefit`` (comparator - exercise for continuous outcomes, exercise - comparator for binary),
    ``se_est`` (bootstrap SE of the benefit), ``var_missing`` (variance of the benefit over the
    conditional draws of the missing inputs), and with ``arms`` (continuous outcomes, learners with
    per-arm SEs) ``arm_se`` = (SE exercise, SE comparator) and ``arm_var_missing`` = (variance
    exercise, variance comparator); ``arm_se`` is None otherwise. ``structural``: a derived binary
    outcome's structural allowance (:mod:`predict.recovery_structure`): ``var_missing`` is then
    max(own, structural) per patient."""
    exp = as_learner(exp)
    cont = exp.continuous
    Fimp = impute_mean(exp.imputer, F)
    ex = expected(exp, F, Fimp)
    a, c = ex["__active__"], ex[comparator]
    out = {"exercise": a, "comparator": c, "benefit": c - a if cont else a - c,
           "se_est": estimation_se(exp, F, Fimp, [comparator])[comparator]}
    se_arm = arm_se(exp, Fimp, comparator, F) if arms and cont else None
    out["arm_se"] = se_arm
    if se_arm is None:
        out["var_missing"] = missing_variance_fast(exp, F, comparator)
    else:
        vb, va, vc = arm_missing_variance(exp, F, comparator)
        out["var_missing"], out["arm_var_missing"] = vb, (va, vc)
    if structural is not None:
        out["var_missing"] = widened(out["var_missing"], structural_variance(exp, structural, F, comparator)[0])
    return out
