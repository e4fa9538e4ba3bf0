"""Harmonisation: outcomes to 0–100 (higher = worse), follow-up selection, global recovery,
the analysis table, and the attrition report.

Follow-up rule: per participant and outcome, among post-baseline measurements with
``after < week <= up_to`` of a window, the one closest to the window's target week; ties
(equally close before and after the target) go to the *earlier* measurement, the one
nearer the end of treatment.

Global recovery (the seed paper's definition): for pain, recovered if the improvement from
baseline is at least 30% of the baseline value and at least 20/100 points; for function, at
least 30% and at least 10/100 points. With ``combine: any`` (the default) a participant has
recovered if the criterion holds for pain *or* function; the outcome is defined when at least
one of the two is evaluable (baseline and follow-up present), so when one outcome is missing
the other decides. With ``combine: all`` both must be evaluable and both criteria must hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from training.config import StudyConfig
from training.dataset import Dataset

RECOVERY = "global_recovery"


@dataclass
class Harmonised:
    """The harmonised analysis table (one row per participant × outcome × follow-up with
    both baseline and follow-up), the per-participant baselines, the attrition report and
    covariate availability per trial."""

    analysis: pd.DataFrame
    baselines: pd.DataFrame
    attrition: pd.DataFrame
    covariate_availability: pd.DataFrame
    config: StudyConfig


def to_0_100(outcomes: pd.DataFrame, cfg: StudyConfig) -> np.ndarray:
    """Each row's value on the common scale: 0–100 (higher = worse) for continuous outcomes; for
    binary outcomes 0/1 with **1 = the good result** (the event itself when the config says
    ``direction: higher_is_better``, else its absence), so benefit is always a risk difference of
    the good result, active minus comparator."""
    scaled = np.full(len(outcomes), np.nan)
    raw = outcomes["value"].to_numpy(float)
    binary = {o for o, s in cfg.outcomes.items() if s.kind == "binary"}
    good_event = {o for o in binary if cfg.outcomes[o].direction == "higher_is_better"}
    is_bin = outcomes["outcome"].isin(binary).to_numpy()
    for code, idx in outcomes.groupby("instrument").indices.items():
        idx = idx[~is_bin[idx]]
        if len(idx):
            scaled[idx] = cfg.instruments[code].to_0_100(raw[idx])
    if is_bin.any():
        good = outcomes["outcome"].isin(good_event).to_numpy()
        scaled[is_bin] = np.where(good[is_bin], raw[is_bin], 1.0 - raw[is_bin])
    return scaled


def select_follow_up(post: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Per participant, outcome and window, the post-baseline row closest to the target week."""
    frames = []
    for w in cfg.windows:
        inw = post[(post["week"] > w.after) & (post["week"] <= w.up_to)].copy()
        if inw.empty:
            continue
        inw["_dist"] = (inw["week"] - w.target_week).abs()
        inw = inw.sort_values(["trial", "participant", "outcome", "_dist", "week"], kind="mergesort")
        best = inw.drop_duplicates(["trial", "participant", "outcome"], keep="first").drop(columns="_dist")
        best["follow_up"] = w.name
        frames.append(best)
    cols = list(post.columns) + ["follow_up"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def recovered(baseline: np.ndarray, follow: np.ndarray, relative: float, min_points: float) -> np.ndarray:
    """1.0 if improvement >= relative × baseline and >= min_points, 0.0 if not, NaN if unevaluable."""
    improvement = baseline - follow
    met = (improvement >= relative * baseline) & (improvement >= min_points)
    return np.where(np.isnan(baseline) | np.isnan(follow), np.nan, met.astype(float))


def centre_within_trial(df: pd.DataFrame, columns: Iterable[str], trial: str = "trial") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Covariates centred about their trial means (missing stays missing), and those means.

    Centring removes across-trial information from a treatment–covariate interaction, so
    only within-trial comparisons estimate it (no ecological bias; Hua et al. 2017).
    """
    columns = list(columns)
    means = df.groupby(trial)[columns].transform("mean")
    return df[columns] - means, df[[trial]].join(means)


def harmonise(ds: Dataset, progress: Callable | None = None) -> Harmonised:
    cfg = ds.config
    out = ds.outcomes.copy()
    out["value_0_100"] = to_0_100(out, cfg)
    base = out[out["week"] == 0]
    base = base[base["outcome"].isin(cfg.baseline_outcomes)]
    baselines = base.pivot_table(index=["trial", "participant"], columns="outcome", values="value_0_100", aggfunc="first")
    baselines = baselines.reindex(columns=cfg.baseline_outcomes).add_prefix("baseline_").reset_index()
    baselines.columns.name = None
    follow = select_follow_up(out[out["week"] > 0], cfg)
    parts = ds.participants.merge(baselines, on=["trial", "participant"], how="left")
    parts["treat"] = (parts["treatment"] == cfg.active).astype(int)
    frames = []
    for name, spec in cfg.outcomes.items():
        f = follow[follow["outcome"] == name][["trial", "participant", "follow_up", "week", "instrument", "value_0_100"]]
        if spec.follow_up is not None:
            f = f[f["follow_up"].isin(spec.follow_up)]
        f = f.rename(columns={"value_0_100": "value"})
        m = parts.merge(f, on=["trial", "participant"], how="inner")
        m["outcome"] = name
        if spec.baseline:
            m["baseline"] = m[f"baseline_{name}"]
            frames.append(m[~m["baseline"].isna()])
        else:  # no baseline: every participant with a follow-up is analysed
            m["baseline"] = np.nan
            frames.append(m)
    if cfg.recovery is not None:
        frames.append(_recovery_rows(parts, follow, cfg))
    lead = ["trial", "participant", "arm", "treatment", "subtype", "treat", "outcome", "follow_up", "week", "instrument", "value", "baseline"]
    rest = [f"baseline_{o}" for o in cfg.baseline_outcomes] + cfg.covariates.names
    analysis = pd.concat(frames, ignore_index=True)[lead + rest] if frames else pd.DataFrame(columns=lead + rest)
    order = {w: i for i, w in enumerate(cfg.window_names)}
    analysis = analysis.assign(_o=analysis["follow_up"].map(order)).sort_values(
        ["outcome", "_o", "trial", "participant"], kind="mergesort").drop(columns="_o").reset_index(drop=True)
    trials = list(ds.received.index)
    attrition = attrition_report(ds, baselines, follow, analysis, trials if progress is None else progress(trials, "attrition"))
    return Harmonised(analysis, parts, attrition, covariate_availability(ds), cfg)


def _recovery_rows(parts: pd.DataFrame, follow: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    wide = follow.pivot_table(index=["trial", "participant", "follow_up"], columns="outcome", values="value_0_100", aggfunc="first")
    weeks = follow.pivot_table(index=["trial", "participant", "follow_up"], columns="outcome", values="week", aggfunc="first")
    sources = cfg.recovery_sources
    wide = wide.reindex(columns=sources).reset_index()
    weeks = weeks.reindex(columns=sources)
    m = parts.merge(wide, on=["trial", "participant"], how="inner")
    crit = np.column_stack([
        recovered(m[f"baseline_{o}"].to_numpy(float), m[o].to_numpy(float), cfg.recovery_relative,
                  cfg.outcomes[o].recovery_min_points)
        for o in sources
    ])
    evaluable = ~np.isnan(crit)
    if cfg.recovery_combine == "any":
        value = np.where(evaluable.any(1), np.nansum(np.where(evaluable, crit, 0), axis=1) > 0, np.nan)
    else:
        value = np.where(evaluable.all(1), (crit == 1).all(1), np.nan)
    m["value"] = value.astype(float)
    wk = weeks.reindex(pd.MultiIndex.from_frame(m[["trial", "participant", "follow_up"]]))
    m["week"] = wk.bfill(axis=1).iloc[:, 0].to_numpy()
    m["instrument"] = ""
    m["outcome"] = cfg.recovery_name
    adj = cfg.recovery_adjust_for
    m["baseline"] = m[f"baseline_{adj}"] if adj else np.nan
    return m[~np.isnan(value)]


def attrition_report(ds: Dataset, baselines: pd.DataFrame, follow: pd.DataFrame, analysis: pd.DataFrame,
                     trials: Iterable[str]) -> pd.DataFrame:
    """Per trial and outcome: received → excluded as invalid → valid → (outcome not collected |
    missing baseline | with baseline) → per window (missing follow-up | analysed).

    Invariants (tested): received = excluded_invalid + valid; valid = not_collected +
    missing_baseline + with_baseline; with_baseline = missing_followup_<w> + analysed_<w>.
    For an outcome without a baseline, ``missing_baseline`` and ``with_baseline`` are not
    applicable (empty): every valid participant of a trial that collected it is eligible, so
    valid - not_collected = missing_followup_<w> + analysed_<w>.
    """
    cfg = ds.config
    excluded = ds.excluded.groupby("trial").size() if len(ds.excluded) else pd.Series(dtype=int)
    parts = ds.participants
    n_valid = parts.groupby("trial").size()
    collected = ds.outcomes.groupby(["trial", "outcome"]).size()
    # Outcomes without a baseline: every valid participant of a trial that collected it is eligible.
    with_base = {o: (baselines.loc[~baselines[f"baseline_{o}"].isna()].groupby("trial").size() if s.baseline else n_valid)
                 for o, s in cfg.outcomes.items()}
    RECOVERY = cfg.recovery_name
    has_recovery = RECOVERY in set(analysis["outcome"])
    if has_recovery:
        any_base = baselines[[f"baseline_{o}" for o in cfg.recovery_sources]].notna().any(axis=1)
        with_base[RECOVERY] = baselines.loc[any_base].groupby("trial").size()
    analysed = analysis.groupby(["trial", "outcome", "follow_up"]).size()
    rows = []
    outcomes = list(cfg.outcomes) + ([RECOVERY] if has_recovery else [])
    for trial in trials:
        received = int(ds.received.get(trial, 0))
        n_ex = int(excluded.get(trial, 0))
        valid = int(n_valid.get(trial, 0))
        for o in outcomes:
            if o == RECOVERY:
                is_collected = any((trial, x) in collected.index for x in cfg.recovery_sources)
            else:
                is_collected = (trial, o) in collected.index
            wb = int(with_base[o].get(trial, 0)) if is_collected else 0
            has_base = o == RECOVERY or cfg.has_baseline(o)
            row = {
                "trial": trial, "outcome": o, "received": received, "excluded_invalid": n_ex, "valid": valid,
                "not_collected": 0 if is_collected else valid,
                # not applicable (empty) for an outcome without a baseline
                "missing_baseline": (valid - wb if is_collected else 0) if has_base else None,
                "with_baseline": wb if has_base else None,
            }
            own = getattr(cfg.outcome(o), "follow_up", None) if hasattr(cfg, "outcome") else None
            for w in cfg.window_names:
                if own is not None and w not in own:  # a window this outcome is not analysed in: not applicable
                    row[f"missing_followup_{w}"] = row[f"analysed_{w}"] = None
                    continue
                a = int(analysed.get((trial, o, w), 0))
                row[f"missing_followup_{w}"] = wb - a
                row[f"analysed_{w}"] = a
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.isna().any().any():  # empty = not applicable (outcome-specific windows, outcomes without a baseline)
        na = [c for c in out.columns if c.startswith(("missing_followup_", "analysed_"))
              or c in ("missing_baseline", "with_baseline")]
        out[na] = out[na].astype("Int64")
    return out


def covariate_availability(ds: Dataset) -> pd.DataFrame:
    """Per trial and covariate: participants, observed values and percent missing; a
    covariate with no observed value in a trial is systematically missing there."""
    parts = ds.participants
    names = ds.config.covariates.names
    observed = parts[names].notna().groupby(parts["trial"]).sum()
    n = parts.groupby("trial").size()
    long = observed.stack().rename("observed").reset_index().rename(columns={"level_1": "covariate"})
    long["participants"] = long["trial"].map(n).astype(int)
    long["observed"] = long["observed"].astype(int)
    long["pct_missing"] = (100 * (1 - long["observed"] / long["participants"])).round(1)
    long["collected"] = long["observed"] > 0
    imp = ds.implausible.groupby(["trial", "covariate"]).size() if len(ds.implausible) else pd.Series(dtype=int)
    long["implausible_set_missing"] = [int(imp.get((t, c), 0)) for t, c in zip(long["trial"], long["covariate"])]
    return long[["trial", "covariate", "participants", "observed", "pct_missing", "collected", "implausible_set_missing"]]
