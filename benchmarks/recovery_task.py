"""The recovery task of a bench_learners scenario at one follow-up with its new trials, as the recovery
interval benchmarks use it (bench_recovery_allowance, diag_binary_allowance, bench_few_trial_scale,
bench_recovery_pooling), and the continuous models recovery's structural field reads."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RecoveryTask:
    """Fitted data ``df`` (truth ``truth``, trial deviations ``recols``), new trials ``ndf`` (truth
    ``ntruth``), the model inputs ``feats`` and the learners' inputs ``X`` / ``NX`` (new trials' ids
    prefixed ``new:``)."""

    df: pd.DataFrame
    truth: pd.DataFrame
    cfg: object
    recols: dict
    ndf: pd.DataFrame
    ntruth: pd.DataFrame
    feats: list
    X: pd.DataFrame
    NX: pd.DataFrame


def recovery_task(scenario: str, seed: int, follow_up: str = "short") -> RecoveryTask:
    """Seed ``seed`` of ``scenario`` (new trials: seed + 10,000), global recovery at ``follow_up``."""
    from benchmarks.bench_learners import load_task

    df, truth, cfg, recols = load_task(scenario, seed, "global_recovery", follow_up)
    ndf, ntruth, _, _ = load_task(scenario, seed + 10_000, "global_recovery", follow_up)
    feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
    X, NX = df[["trial", "treatment"] + feats], ndf[["trial", "treatment"] + feats]
    NX = NX.assign(trial=lambda d: "new:" + d["trial"].astype(str))
    return RecoveryTask(df, truth, cfg, recols, ndf, ntruth, feats, X, NX)


def source_models(task: RecoveryTask, scenario: str, seed: int, follow_up: str = "short") -> dict:
    """The exports of the continuous effect models (no bootstrap) of recovery's source outcomes at
    ``follow_up``, fitted on the same seed's data: what ``training.recovery_structure.structural_field``
    reads to build recovery's structural missing-input field as ``train`` deploys it."""
    from benchmarks.bench_learners import load_task
    from training.train import make_learner

    cont = {}
    for o in task.cfg.recovery_sources:
        odf = load_task(scenario, seed, o, follow_up)[0]
        cont[o] = make_learner("effect_model", "continuous", task.cfg, seed, n_boot=0).fit(
            odf[["trial", "treatment"] + task.feats], odf["value"].to_numpy(float)).to_export()
    return cont


def comparisons(data: pd.DataFrame, active: str) -> tuple[list, np.ndarray, np.ndarray]:
    """(comparator classes, rows in a trial with both the active class and a comparator, each row's
    comparator mix :func:`training.learners.stacking.comparator_mix`)."""
    from training.learners.stacking import comparator_mix

    cls = data["treatment"].astype(str).to_numpy()
    trial = data["trial"].astype(str).to_numpy()
    comps = sorted(set(cls) - {active})
    ok = np.array([len(set(cls[trial == t]) - {active}) > 0 and (cls[trial == t] == active).any() for t in trial])
    return comps, ok, comparator_mix(trial, cls, active, comps)
