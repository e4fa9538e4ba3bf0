"""One randomised trial (a trialist's own data): every learner fits, tuning/cross-fitting folds
split participants (stratified by arm) instead of trials, and the bootstrap resamples
participants within arm, so intervals are not spuriously of zero width."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.learners.folds import row_folds, trial_folds
from training.learners.intervals import cluster_bootstrap

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "respiratory"


def test_row_folds_split_participants_within_a_single_trial():
    trial = np.zeros(40, int)
    cls = np.array(["exercise", "placebo"] * 20)
    folds = row_folds(trial, np.array([True]), cls, 5, seed=3)
    assert len(folds) == 5
    cover = np.sum(folds, axis=0)
    assert np.all(cover == 1)  # a partition of the participants
    for m in folds:  # stratified: both arms in every held-out fold
        assert set(cls[m]) == {"exercise", "placebo"}


def test_row_folds_keep_whole_trials_when_there_are_several():
    trial = np.repeat(np.arange(6), 10)
    cls = np.tile(np.array(["exercise", "placebo"]), 30)
    has = np.ones(6, bool)
    folds = row_folds(trial, has, cls, 3, seed=1)
    want = [np.isin(trial, h) for h in trial_folds(trial, has, 3, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(folds, want))


def test_bootstrap_resamples_participants_within_arm_for_one_trial():
    trial = np.zeros(30, int)
    cls = np.array(["exercise"] * 10 + ["placebo"] * 20)
    reps = list(cluster_bootstrap(trial, np.array([True]), 20, 0, strata=cls))
    assert len(reps) == 20
    for idx, codes in reps:
        assert (cls[idx] == "exercise").sum() == 10 and (cls[idx] == "placebo").sum() == 20
        assert np.all(codes == 0)
    assert len({tuple(i) for i, _ in reps}) > 1  # replicates differ


@pytest.mark.parametrize("name", ["effect_model", "risk_model", "t_learner", "dr_learner"])
def test_every_learner_fits_one_trial_with_nonzero_intervals(name):
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.learners.base import task_frame
    from training.train import make_learner

    h = harmonise(load_dataset(EXAMPLES / "train", EXAMPLES / "study.yaml"))
    cfg = h.config
    o, w = h.analysis[["outcome", "follow_up"]].iloc[0]
    df = task_frame(h.analysis, o, w)
    assert df["trial"].nunique() == 1
    feats = [c for c in df.columns if c in cfg.covariates.names or c.startswith("baseline_")]
    otype = "continuous" if o in cfg.outcomes else "binary"
    m = make_learner(name, otype, cfg, 1, n_boot=10).fit(df[["trial", "treatment"] + feats], df["value"].to_numpy(float))
    p = m.predict_interval(df[["trial", "treatment"] + feats])
    comp = [c for c in m.comparators_ if f"benefit_vs_{c}_ci_low" in p][0]
    width = (p[f"benefit_vs_{comp}_ci_high"] - p[f"benefit_vs_{comp}_ci_low"]).to_numpy()
    assert np.all(np.isfinite(width)) and np.all(width > 0)
