"""The train report's verdict and warnings (training/train_warnings.py; wording in training/verdicts.py):
the average effect in the held-out trials against a hand computation, the predicted-benefit spread
warning, and the separable case-mix warning (a trial far from the others is flagged; a trial that
merely did not collect covariates the others have is not)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from training.train_warnings import average_effect, case_mix_warnings, separable_trials, task_verdict


def _predictions(rng, spread: float, effect: float = 5.0, trials=("A", "B", "C", "D"), n=80):
    """Held-out predictions of one learner: a constant true effect (points, higher = worse outcome)
    and predicted benefits spread with SD ``spread`` around it, unrelated to the outcomes."""
    rows = []
    for t in trials:
        treat = np.tile([0.0, 1.0], n // 2)
        y = 50 - effect * treat + rng.normal(0, 10, n)
        rows.append(pd.DataFrame({"learner": "effect_model", "trial": t, "treat": treat, "y": y,
                                  "benefit": effect + rng.normal(0, spread, n) if spread else np.full(n, effect)}))
    return pd.concat(rows, ignore_index=True)


def _pooled(c, slope, autoc):
    return pd.DataFrame([{"learner": "effect_model", "metric": m, "estimate": v[0], "ci_low": v[1], "ci_high": v[2]}
                         for m, v in (("c_for_benefit", c), ("calibration_slope_for_benefit", slope), ("autoc", autoc))])


def test_average_effect_is_the_pooled_difference_in_means():
    rng = np.random.default_rng(1)
    p = _predictions(rng, 0.0, trials=("A",))
    est, lo, hi = average_effect(p, "continuous")
    a, c = -p.loc[p.treat == 1, "y"], -p.loc[p.treat == 0, "y"]  # oriented: higher = better
    se = np.sqrt(a.var(ddof=1) / len(a) + c.var(ddof=1) / len(c))
    assert est == pytest.approx(a.mean() - c.mean(), abs=1e-10)  # one trial: its own difference and CI
    assert (lo, hi) == pytest.approx((est - 1.959964 * se, est + 1.959964 * se), abs=1e-5)
    p4 = _predictions(rng, 0.0)
    est4, lo4, hi4 = average_effect(p4, "continuous")
    assert lo4 < 5.0 < hi4 and est4 > 0  # positive favours the intervention


def test_spread_warning_when_the_data_show_no_heterogeneity():
    rng = np.random.default_rng(2)
    res = SimpleNamespace(pooled=_pooled((0.5, 0.45, 0.55), (0.1, -0.8, 1.0), (0.0, -1.0, 1.0)),
                          predictions=_predictions(rng, 20.0), r_loss=pd.DataFrame(), stack_weights={}, folds={})
    v, warns = task_verdict("pain__short", res, {"model": "effect_model"}, "continuous")
    assert v["level"] == "not_supported" and "Use the average effect (" in v["sentence"]
    assert len(warns) == 1 and "spread" in warns[0] and "not supported by these data" in warns[0]
    # a model whose predicted benefits hardly vary gets no spread warning
    res.predictions = _predictions(np.random.default_rng(2), 0.1)
    assert task_verdict("pain__short", res, {"model": "effect_model"}, "continuous")[1] == []
    # a calibration slope interval below 1: the spread is too wide whatever the verdict
    res.pooled = _pooled((0.6, 0.55, 0.65), (0.4, 0.2, 0.7), (1.0, 0.2, 1.8))
    v, warns = task_verdict("pain__short", res, {"model": "effect_model"}, "continuous")
    assert v["level"] == "supported" and len(warns) == 1 and "below 1" in warns[0]


def test_separable_case_mix_is_flagged_per_held_out_trial():
    rng = np.random.default_rng(3)
    parts = []
    for t in ("A", "B", "C", "D"):
        shift = 40.0 if t == "D" else 0.0
        parts.append(pd.DataFrame({"trial": t, "participant": [f"{t}{i}" for i in range(60)],
                                   "age": rng.normal(45 + shift, 5, 60), "bmi": rng.normal(26, 4, 60)}))
    a = pd.concat(parts, ignore_index=True)
    a.loc[a.trial == "B", "bmi"] = np.nan  # B did not collect bmi: not a case-mix difference
    cs = separable_trials(a, ["A", "B", "C", "D"], ["age", "bmi"])
    assert cs["D"] > 0.99 and max(cs[t] for t in "ABC") < 0.9
    w = case_mix_warnings(cs)
    assert len(w) == 1 and w[0].startswith("held-out trial D's case-mix is almost perfectly separable from the other trials")
