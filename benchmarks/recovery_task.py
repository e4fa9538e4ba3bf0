"""The short-term recovery task of a bench_learners scenario with its new trials, as the recovery
interval benchmarks use it (bench_recovery_allowance, diag_binary_allowance)."""
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


def recovery_task(scenario: str, seed: int) -> RecoveryTask:
    """Seed ``seed`` of ``scenario`` (new trials: seed + 10,000), global recovery at short term."""
    from benchmarks.bench_learners import load_task

    df, truth, cfg, recols = load_task(scenario, seed, "global_recovery", "short")
    ndf, ntruth, _, _ = load_task(scenario, seed + 10_000, "global_recovery", "short")
    feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
    X, NX = df[["trial", "treatment"] + feats], ndf[["trial", "treatment"] + feats]
    NX = NX.assign(trial=lambda d: "new:" + d["trial"].astype(str))
    return RecoveryTask(df, truth, cfg, recols, ndf, ntruth, feats, X, NX)


def comparisons(data: pd.DataFrame, active: str) -> tuple[list, np.ndarray, np.ndarray]:
    """(comparator classes, rows in a trial with both the active class and a comparator, each row's
    comparator mix :func:`training.learners.stacking.comparator_mix`)."""
    from training.learners.stacking import comparator_mix

    cls = data["treatment"].astype(str).to_numpy()
    trial = data["trial"].astype(str).to_numpy()
    comps = sorted(set(cls) - {active})
    ok = np.array([len(set(cls[trial == t]) - {active}) > 0 and (cls[trial == t] == active).any() for t in trial])
    return comps, ok, comparator_mix(trial, cls, active, comps)
