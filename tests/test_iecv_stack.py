"""The deployed stack's own IECV performance (training/iecv_stack.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.iecv_stack import STACK, stacked_per_trial, stacked_predictions


def _pred():
    rng = np.random.default_rng(0)
    rows = []
    for lr, shift in (("effect_model", 0.0), ("t_learner", 2.0), ("constant", 5.0)):
        for r in range(12):
            rows.append({"learner": lr, "fold": "A" if r < 6 else "B", "trial": "A" if r < 6 else "B", "row": r,
                         "treatment": "exercise" if r % 2 else "usual_care", "treat": float(r % 2), "y": float(r),
                         "e": 0.5, "benefit": r + shift, "expected_own": 40.0 + shift,
                         "expected_comparator": np.nan if lr == "constant" else 45.0 + rng.normal()})
    return pd.DataFrame(rows)


def test_stack_combines_members_as_the_runtime_does():
    pred = _pred()
    sp = stacked_predictions(pred, {"effect_model": 0.25, "t_learner": 0.75, "constant": 1e-9})
    assert (sp["learner"] == STACK).all() and len(sp) == 12
    assert np.allclose(sp["benefit"], np.arange(12) + 0.75 * 2.0)  # weight ~0 member left out, like train.py
    assert np.allclose(sp["expected_own"], 40.0 + 1.5)
    assert stacked_predictions(pred, {"effect_model": 1.0}) is None  # one member: no stack


def test_stack_metrics_per_held_out_trial():
    seen = []

    def metrics_fn(b, y, treat, otype, own, comp, e, n_boot, seed):
        seen.append((len(b), otype, seed))
        return [("c_for_benefit", float(np.mean(b)), 0.0, 1.0)]

    per = stacked_per_trial(_pred(), {"effect_model": 0.5, "t_learner": 0.5}, "continuous", 7, 3, metrics_fn)
    assert list(per["trial"]) == ["A", "B"] and (per["learner"] == STACK).all()
    assert per["estimate"].tolist() == [np.mean(np.arange(6) + 1.0), np.mean(np.arange(6, 12) + 1.0)]
    assert seen == [(6, "continuous", 3), (6, "continuous", 4)]
    assert stacked_per_trial(_pred(), {}, "continuous", 7, 3, metrics_fn).empty
