"""IECV with many trials: held out in groups (one fit per group), scored trial by trial."""
import pandas as pd
from threadpoolctl import threadpool_limits

from training.iecv import holdout_trials, run_iecv
from training.learners.effect_model import ConstantEffect
from training.simulate.small_trials import small_trials


class Spy(ConstantEffect):
    seen: list = []

    def fit(self, X, y):
        Spy.seen.append(set(X["trial"]))
        return super().fit(X, y)


def test_grouped_iecv_fits_once_per_group_and_scores_every_trial():
    X, y, _ = small_trials(n_trials=9, n_per_arm=40, seed=5, noise=8.0, effect_mod=5.0)
    df = X.assign(value=y)
    hold = holdout_trials(df, "exercise")
    Spy.seen = []
    with threadpool_limits(1):
        res = run_iecv(df, "value", {"spy": lambda: Spy(n_boot=0)}, "continuous", n_boot=5, max_folds=3)
    assert len(Spy.seen) == 3 and len(res.folds) == 3
    for key, train in res.folds.items():  # a group's trials are never in its training data
        assert not set(key.split("+")) & set(train)
    per = res.per_trial[res.per_trial["metric"] == "c_for_benefit"]
    skipped = {r["trial"] for r in res.skipped}  # e.g. a class whose only trials are held out together
    assert set(per["trial"]) | skipped == set(hold) and len(set(per["trial"])) >= 3  # per trial, not per group
    assert set(res.predictions["trial"]) >= set(hold)
    assert not res.pooled.empty
