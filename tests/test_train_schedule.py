"""training.train._run_all: a plan is handed to ``on_plan`` (assembled in the parent while the
pool works on) exactly once, with its folds' outputs in fold order, serial or in a pool; and
the IECV result assembled early equals the one assembled after the pool."""
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from training.config import load_config
from training.iecv import assemble_iecv, plan_iecv
from training.learners.effect_model import ConstantEffect, EffectModel
from training.simulate.small_trials import small_trials
from training.train import TrainSettings, _run_all


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _plans():
    X, y, _ = small_trials(n_trials=4, n_per_arm=25, seed=5, noise=8.0, effect_mod=5.0)
    df = X.assign(_y=y)
    two = {"constant": lambda: ConstantEffect(n_boot=0), "effect_model": lambda: EffectModel(n_boot=0)}
    one = {"constant": lambda: ConstantEffect(n_boot=0)}
    return {("pain__short", "all"): plan_iecv(df, "_y", two, "continuous", n_boot=2, seed=1),
            ("pain__long", "deployed"): plan_iecv(df, "_y", one, "continuous", n_boot=2, seed=1)}


def _per_trial(res) -> pd.DataFrame:
    return res.per_trial.sort_values(["learner", "trial", "metric"]).reset_index(drop=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_on_plan_once_per_plan_with_folds_in_order(workers):
    plans = _plans()
    seen: list = []
    early: dict = {}

    def on_plan(key, outs):
        seen.append(key)
        early[key] = assemble_iecv(plans[key], outs)

    fold_outs, _secs, fitted = _run_all(plans, [], load_config(None), TrainSettings(workers=workers), None,
                                        on_plan=on_plan)
    assert sorted(seen) == sorted(plans) and len(seen) == len(plans)
    assert fitted == {}
    for key, plan in plans.items():
        late = assemble_iecv(plan, fold_outs[key])
        pd.testing.assert_frame_equal(_per_trial(early[key]), _per_trial(late))
        pd.testing.assert_frame_equal(early[key].pooled, late.pooled)
        pd.testing.assert_frame_equal(early[key].predictions, late.predictions)
        assert early[key].stack_weights == late.stack_weights
        assert list(early[key].folds) == list(late.folds) == list(plan["hold"])
