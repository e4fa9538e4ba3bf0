"""Load and validate a pooled IPD dataset (the data format in ``docs/data-format.md``).

Validation collects *every* problem (file, trial, participant, line, column) before
stopping. Legitimately incomplete data (a missing covariate, baseline or follow-up) is not
an error: it is counted later in the attrition report. With ``drop_invalid=True`` invalid
participants (or whole trials, for trial-level problems) are excluded instead of stopping,
and each exclusion is listed with its reason; file-level problems always stop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from predict.errors import LbpError, Problem, ValidationFailed
from training.config import StudyConfig, resolve_config
from training.tables import find_table, parse_numeric, read_table

P_REQUIRED = ("trial", "participant", "arm", "treatment")
O_REQUIRED = ("trial", "participant", "outcome", "instrument", "week", "value")
MAX_PER_CODE = 200  # problems listed per kind; the rest are counted


@dataclass
class Dataset:
    """A validated dataset: typed tables, the config, and what was excluded or warned about."""

    path: Path
    config: StudyConfig
    participants: pd.DataFrame
    outcomes: pd.DataFrame
    received: pd.Series  # participants received per trial (before any exclusion)
    excluded: pd.DataFrame  # trial, participant, reason (only with drop_invalid)
    warnings: list[Problem] = field(default_factory=list)
    implausible: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["trial", "participant", "covariate", "value"]))
    small_trials: dict = field(default_factory=dict)  # trial -> participants, below config.min_trial_size

    @property
    def n_trials(self) -> int:
        return int(self.participants["trial"].nunique())

    @property
    def n_participants(self) -> int:
        return len(self.participants)


class ProblemCollector:
    """Accumulates problems, capping how many of each kind are listed."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.counts: dict[str, int] = {}
        self.n_errors = 0  # every error found, listed or only counted
        self.bad_participants: dict[tuple[str, str], str] = {}
        self.bad_trials: dict[str, str] = {}
        self.bad_outcome_lines: set[int] = set()
        self.implausible: list[pd.DataFrame] = []

    def add(self, p: Problem) -> None:
        n = self.counts.get(p.code, 0)
        self.counts[p.code] = n + 1
        self.n_errors += p.severity == "error"
        if n < MAX_PER_CODE:
            self.problems.append(p)
        if p.severity != "error":
            return
        if p.scope == "participant" and p.trial is not None and p.participant is not None:
            self.bad_participants.setdefault((p.trial, p.participant), p.code)
        elif p.scope == "trial" and p.trial is not None:
            self.bad_trials.setdefault(p.trial, p.code)

    def rows(self, df: pd.DataFrame, mask: np.ndarray, code: str, column: str | None, message, scope="participant",
             severity: str = "error") -> None:
        """One problem per offending row (listed up to the cap, all counted); ``message(row)`` builds the text."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        file = df.attrs.get("file")
        bad = df.loc[mask]
        listed = max(0, MAX_PER_CODE - self.counts.get(code, 0))
        for _, r in bad.head(listed).iterrows():
            self.add(
                Problem(code, message(r), file=file, trial=r.get("trial") or None, participant=r.get("participant") or None,
                        row=int(r["__line"]), column=column, scope=scope, severity=severity)
            )
        rest = bad.iloc[listed:]
        if len(rest):
            self.counts[code] = self.counts.get(code, 0) + len(rest)
            self.n_errors += len(rest) if severity == "error" else 0
            if scope == "participant" and severity == "error":
                for t, p in zip(rest["trial"], rest["participant"]):
                    self.bad_participants.setdefault((t, p), code)

    def failed(self, problems: list[Problem], what: str) -> ValidationFailed:
        """The error of a failed validation: ``problems`` listed, every error found counted (before: the
        count was of the listed lines, so 394 duplicated ids read '258 problems found')."""
        return ValidationFailed(problems, what=what, total=self.n_errors)

    def errors(self) -> list[Problem]:
        out = [p for p in self.problems if p.severity == "error"]
        for code, n in self.counts.items():
            if n > MAX_PER_CODE:
                out.append(Problem(code, f"... and {n - MAX_PER_CODE} more of this kind", severity="error"))
        return out

    def file_errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error" and p.scope == "file"]


def duplicate_words(dups: pd.DataFrame) -> dict[tuple[str, str], str]:
    """The message of each duplicated trial + participant key: its lines and arms, and what to do. Rows of
    one id in DIFFERENT arms are a within-person (paired, split-body) design, e.g. one eye of each patient
    randomised to laser and the other not (survival::diabetic): each randomised unit needs its own id."""
    out = {}
    for key, g in dups.groupby(["trial", "participant"], sort=False):
        lines = ", ".join(str(int(x)) for x in g["__line"])
        arms = list(dict.fromkeys(g["arm"].astype(str)))
        head = f"participant appears {len(g)} times in this trial (lines {lines}; the key is trial + participant)"
        if len(arms) > 1:
            quoted = " and ".join(repr(a) for a in arms)
            out[key] = (f"{head}, in arms {quoted}: in a paired or split-body design (two eyes, sides or teeth of one "
                        f"person randomised to different arms) give each randomised unit its own participant id, e.g. "
                        f"'{key[1]}_{arms[0]}' (the pairing is then not modelled: units are analysed as independent)")
        else:
            out[key] = f"{head}, all in arm {arms[0]!r}: remove the repeated rows or give each participant its own id"
    return out


def _require_columns(df: pd.DataFrame, required, col: ProblemCollector) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        col.add(Problem("missing_column", f"required column(s) missing: {', '.join(missing)}", file=df.attrs["file"], row=1))


def check_participants(df: pd.DataFrame, cfg: StudyConfig, col: ProblemCollector) -> pd.DataFrame:
    """Check ``participants.csv`` against the config; problems go to ``col``; returns the rows kept."""
    file = df.attrs["file"]
    for key in ("trial", "participant", "arm", "treatment"):
        df[key] = df[key].astype(str).str.strip()
    col.rows(df, (df["trial"] == "").to_numpy(), "missing_id", "trial", lambda r: "trial id is empty")
    col.rows(df, (df["participant"] == "").to_numpy(), "missing_id", "participant", lambda r: "participant id is empty")
    dup = df.duplicated(["trial", "participant"], keep=False).to_numpy() & (df["participant"] != "").to_numpy()
    if dup.any():
        said = duplicate_words(df.loc[dup])
        col.rows(df, dup, "duplicate_participant", "participant", lambda r: said[(r["trial"], r["participant"])])
    classes = set(cfg.treatment_classes)
    col.rows(df, (df["treatment"] == "").to_numpy(), "missing_treatment", "treatment", lambda r: "treatment class is empty")
    unknown = ~df["treatment"].isin(classes).to_numpy() & (df["treatment"] != "").to_numpy()
    col.rows(df, unknown, "unknown_treatment", "treatment",
             lambda r: f"treatment {r['treatment']!r} is not one of {', '.join(cfg.treatment_classes)}")
    col.rows(df, (df["arm"] == "").to_numpy(), "missing_arm", "arm", lambda r: "arm label is empty")
    if "subtype" in df.columns:
        df["subtype"] = df["subtype"].astype(str).str.strip()
        has = (df["subtype"] != "").to_numpy()
        bad_sub = has & ~df["subtype"].isin(cfg.subtypes).to_numpy()
        col.rows(df, bad_sub, "unknown_subtype", "subtype",
                 lambda r: f"subtype {r['subtype']!r} is not one of {', '.join(cfg.subtypes)}")
        misplaced = has & ~df["treatment"].isin(cfg.subtype_classes).to_numpy() & ~bad_sub
        col.rows(df, misplaced, "subtype_not_allowed", "subtype",
                 lambda r: f"a subtype is only for {', '.join(cfg.subtype_classes)}, not {r['treatment']!r}")
    else:
        df["subtype"] = ""
    # Trial structure: one class per arm label; at least two arms.
    ok = df[(df["trial"] != "") & (df["arm"] != "") & df["treatment"].isin(classes)]
    arm_classes = ok.groupby(["trial", "arm"])["treatment"].unique()
    for (trial, arm), cls in arm_classes.items():
        if len(cls) > 1:
            col.add(Problem("arm_two_classes", f"arm {arm!r} is labelled with {len(cls)} treatment classes: {', '.join(sorted(cls))}",
                            file=file, trial=trial, column="treatment", scope="trial"))
    n_arms = df[df["trial"] != ""].groupby("trial")["arm"].nunique()
    for trial, n in n_arms.items():
        if n < 2:
            col.add(Problem("single_arm_trial", "the trial has only one arm; a randomised comparison needs two",
                            file=file, trial=trial, column="arm", scope="trial"))
    # Covariates.
    declared = cfg.covariates.names
    extra = [c for c in df.columns if c not in set(declared) | set(P_REQUIRED) | {"subtype", "__line"}]
    if extra:
        col.add(Problem("unknown_column", f"columns not declared in the study config are ignored: {', '.join(extra)}",
                        file=file, severity="warning"))
    absent = [c for c in declared if c not in df.columns]
    if absent:
        col.add(Problem("covariate_absent", f"declared covariates not in the file (treated as not collected): {', '.join(absent)}",
                        file=file, severity="warning"))
    out = df[["trial", "participant", "arm", "treatment", "subtype", "__line"]].copy()
    for spec in cfg.covariates:
        if spec.name not in df.columns:
            out[spec.name] = np.nan if spec.type != "categorical" else None
            continue
        if spec.type == "categorical":
            vals = df[spec.name].astype(str).str.strip()
            bad = (vals != "").to_numpy() & ~vals.isin(spec.categories).to_numpy()
            col.rows(df, bad, "bad_category", spec.name,
                     lambda r, s=spec: f"{r[s.name]!r} is not one of {', '.join(s.categories)}")
            out[spec.name] = vals.where(vals != "", None)
            continue
        vals, nonnum = parse_numeric(df[spec.name])
        col.rows(df, nonnum, "not_a_number", spec.name, lambda r, s=spec: f"{r[s.name]!r} is not a number")
        present = ~np.isnan(vals)
        if spec.type == "binary":
            bad = present & ~np.isin(vals, (0.0, 1.0))
            col.rows(df, bad, "not_binary", spec.name, lambda r, s=spec: f"{r[s.name]!r} is not 0 or 1 (yes/no covariates are 0/1)")
        elif spec.range is not None:
            lo, hi = spec.range
            bad = present & ((vals < lo) | (vals > hi))
            unit = f" {spec.unit}" if spec.unit else ""
            col.rows(df, bad, "out_of_range", spec.name,
                     lambda r, s=spec, lo=lo, hi=hi, u=unit: f"{r[s.name]} is outside the range {lo:g}–{hi:g}{u} (impossible)")
        vals = np.where(nonnum, np.nan, vals)
        if spec.type == "continuous" and spec.name in cfg.plausible:
            plo, phi = cfg.plausible[spec.name]
            odd = ~np.isnan(vals) & ((vals < plo) | (vals > phi))
            if spec.range is not None:
                odd &= (vals >= spec.range[0]) & (vals <= spec.range[1])
            if odd.any():
                unit = f" {spec.unit}" if spec.unit else ""
                col.rows(df, odd, "implausible_value", spec.name,
                         lambda r, s=spec, lo=plo, hi=phi, u=unit:
                         f"{r[s.name]} is outside the plausible range {lo:g}–{hi:g}{u}: set to missing (participant kept)",
                         severity="warning")
                col.implausible.append(pd.DataFrame({"trial": df["trial"].to_numpy()[odd], "participant": df["participant"].to_numpy()[odd],
                                                     "covariate": spec.name, "value": vals[odd]}))
                vals = np.where(odd, np.nan, vals)
        out[spec.name] = vals
    return out


def check_outcomes(df: pd.DataFrame, cfg: StudyConfig, keys: set, col: ProblemCollector) -> pd.DataFrame:
    """Check ``outcomes.csv`` against the config and the participant ``keys``; problems go to ``col``."""
    file = df.attrs["file"]
    for key in ("trial", "participant", "outcome", "instrument"):
        df[key] = df[key].astype(str).str.strip()
    orphan = ~pd.MultiIndex.from_frame(df[["trial", "participant"]]).isin(keys)
    col.rows(df, orphan, "unknown_participant", "participant",
             lambda r: "outcome row for a participant not in the participants table", scope="row")
    unknown_out = ~df["outcome"].isin(cfg.outcomes).to_numpy()
    if unknown_out.any():
        names = df.loc[unknown_out, "outcome"].value_counts()
        col.add(Problem("unknown_outcome", f"{int(unknown_out.sum())} rows of outcomes the study config does not name are ignored: "
                        + ", ".join(f"{k!r} ({v})" for k, v in names.items()), file=file, column="outcome", severity="warning"))
        df = df[~unknown_out].reset_index(drop=True)
        df.attrs["file"] = file
        orphan = orphan[~unknown_out]
        unknown_out = unknown_out[~unknown_out]
    # A binary outcome's instrument cell may be empty when the outcome declares one instrument.
    single = {o: s.instruments[0] for o, s in cfg.outcomes.items() if len(s.instruments) == 1}
    empty_ins = (df["instrument"] == "").to_numpy() & df["outcome"].isin(single).to_numpy()
    if empty_ins.any():
        df.loc[empty_ins, "instrument"] = df.loc[empty_ins, "outcome"].map(single)
    unknown_ins = ~df["instrument"].isin(cfg.instruments).to_numpy()
    col.rows(df, unknown_ins, "unknown_instrument", "instrument",
             lambda r: f"instrument {r['instrument']!r} is not in the registry; declare it under 'instruments' in the study config")
    allowed = np.array([
        (i in cfg.outcomes[o].instruments) if o in cfg.outcomes else True for o, i in zip(df["outcome"], df["instrument"])
    ], dtype=bool)
    wrong = ~allowed & ~unknown_ins & ~unknown_out
    col.rows(df, wrong, "instrument_not_for_outcome", "instrument",
             lambda r: f"instrument {r['instrument']!r} is not declared for outcome {r['outcome']!r}")
    week, bad_week = parse_numeric(df["week"])
    col.rows(df, bad_week, "not_a_number", "week", lambda r: f"week {r['week']!r} is not a number")
    col.rows(df, np.isnan(week) & ~bad_week, "missing_week", "week", lambda r: "week is empty")
    col.rows(df, week < 0, "negative_week", "week", lambda r: f"week {r['week']} is negative (0 = baseline)")
    value, bad_val = parse_numeric(df["value"])
    col.rows(df, bad_val, "not_a_number", "value", lambda r: f"value {r['value']!r} is not a number")
    ins_ok = ~unknown_ins
    lo = np.array([cfg.instruments[i].min if ok else np.nan for i, ok in zip(df["instrument"], ins_ok)])
    hi = np.array([cfg.instruments[i].max if ok else np.nan for i, ok in zip(df["instrument"], ins_ok)])
    out_rng = ins_ok & ~np.isnan(value) & ((value < lo) | (value > hi))
    col.rows(df, out_rng, "value_out_of_range", "value",
             lambda r: f"value {r['value']} is outside the range of {r['instrument']} "
                       f"({cfg.instruments[r['instrument']].min:g}–{cfg.instruments[r['instrument']].max:g})")
    for idx in np.flatnonzero(orphan | unknown_out | unknown_ins | wrong | bad_week | bad_val | out_rng | (week < 0)):
        col.bad_outcome_lines.add(int(df["__line"].iloc[idx]))
    out = pd.DataFrame({
        "trial": df["trial"], "participant": df["participant"], "outcome": df["outcome"],
        "instrument": df["instrument"], "week": week, "value": value, "__line": df["__line"],
    })
    # Trial-level: one instrument per outcome within a trial.
    inst = out[~unknown_ins].groupby(["trial", "outcome"])["instrument"].unique()
    for (trial, outcome), ins in inst.items():
        if len(ins) > 1:
            col.add(Problem("mixed_instruments", f"outcome {outcome!r} is measured with {len(ins)} instruments "
                            f"({', '.join(sorted(ins))}); use one per outcome within a trial", file=file, trial=trial,
                            column="instrument", scope="trial"))
    # Duplicate measurements: conflicting ones are errors, identical ones a warning.
    measured = out[~np.isnan(out["value"].to_numpy()) & ~np.isnan(out["week"].to_numpy())]
    key = ["trial", "participant", "outcome", "week"]
    dups = measured[measured.duplicated(key, keep=False)]
    if len(dups):
        nvals = dups.groupby(key)["value"].nunique()
        for k, n in nvals.items():
            if n > 1:
                first = dups.set_index(key).loc[k, "__line"]
                line = int(np.min(np.atleast_1d(first)))
                col.add(Problem("conflicting_duplicate", f"{n} different values for outcome {k[2]!r} at week {k[3]:g}",
                                file=file, trial=k[0], participant=k[1], row=line, column="value"))
        n_same = int(dups.duplicated(key + ["value"]).sum())
        if n_same:
            col.add(Problem("identical_duplicate", f"{n_same} outcome rows repeat an identical measurement and are counted once",
                            file=file, severity="warning"))
    no_base = {o for o, s in cfg.outcomes.items() if not s.baseline}
    at0 = (out["week"].to_numpy() == 0) & out["outcome"].isin(no_base).to_numpy()
    if at0.any():
        col.add(Problem("baseline_not_used", f"{int(at0.sum())} week-0 rows of outcomes without a baseline in the config "
                        f"({', '.join(sorted(set(out.loc[at0, 'outcome'])))}) are ignored", file=file, severity="warning"))
        out = out[~at0]
        value = value[~at0]
        bad_val = bad_val[~at0]
    n_empty = int((np.isnan(value) & ~bad_val).sum())
    if n_empty:
        col.add(Problem("empty_value", f"{n_empty} outcome rows have an empty value and are treated as not measured",
                        file=file, severity="warning"))
    keep = ~np.isnan(out["value"].to_numpy())
    out = out[keep].drop_duplicates(key + ["value"])
    return out


def dataset_label(folder: str | Path, cfg: StudyConfig) -> str:
    """How a dataset is named in its validation errors: the folder and the study config applied
    (a folder without ``study.yaml`` read without ``--config`` gets the default config)."""
    return f"dataset {folder} (study config: {cfg.source})"


def load_dataset(data: str | Path, config: str | Path | StudyConfig | None = None, *, drop_invalid: bool = False,
                 strict: bool = False) -> Dataset:
    """Read, validate and type a dataset folder.

    Raises :class:`ValidationFailed` listing every problem (unless ``drop_invalid`` and
    all problems are participant- or trial-level, in which case those are excluded and
    recorded in ``Dataset.excluded``). With ``strict`` every warning (implausible values,
    ignored rows and columns, small trials) is an error too.
    """
    folder = Path(data)
    if not folder.is_dir():
        raise LbpError(f"dataset folder {folder} not found")
    cfg = config if isinstance(config, StudyConfig) else resolve_config(folder, config)
    col = ProblemCollector()
    ppath, probs = find_table(folder, "participants")
    opath, probs2 = find_table(folder, "outcomes")
    for p in probs + probs2:
        col.add(p)
    if col.file_errors():
        raise col.failed(col.errors(), dataset_label(folder, cfg))
    pdf, odf = read_table(ppath), read_table(opath)
    _require_columns(pdf, P_REQUIRED, col)
    _require_columns(odf, O_REQUIRED, col)
    if col.file_errors():
        raise col.failed(col.errors(), dataset_label(folder, cfg))
    parts = check_participants(pdf, cfg, col)
    keys = set(zip(parts["trial"], parts["participant"]))
    outs = check_outcomes(odf, cfg, pd.MultiIndex.from_tuples(list(keys)) if keys else pd.MultiIndex.from_tuples([], names=["a", "b"]), col)
    received = parts[parts["trial"] != ""].groupby("trial").size()
    small = {str(t): int(n) for t, n in received.items() if n < cfg.min_trial_size}
    for t, n in small.items():
        col.add(Problem("small_trial", f"only {n} participants (min_trial_size {cfg.min_trial_size}): the trial is pooled "
                        "but never held out alone in cross-validation", file=pdf.attrs.get("file"), trial=t, severity="warning"))
    errors = col.errors()
    warnings = [p for p in col.problems if p.severity == "warning"]
    if strict and warnings:
        raise ValidationFailed([Problem(w.code, w.message + " [--strict]", file=w.file, trial=w.trial, participant=w.participant,
                                        row=w.row, column=w.column, scope=w.scope) for w in warnings] + errors,
                               what=dataset_label(folder, cfg) + " (--strict: warnings are errors)")
    if errors and (not drop_invalid or col.file_errors()):
        raise col.failed(errors + warnings, dataset_label(folder, cfg))
    excluded = _exclusions(parts, col)
    if len(excluded):
        drop = pd.MultiIndex.from_frame(excluded[["trial", "participant"]])
        parts = parts[~pd.MultiIndex.from_frame(parts[["trial", "participant"]]).isin(drop)]
        outs = outs[~pd.MultiIndex.from_frame(outs[["trial", "participant"]]).isin(drop)]
        warnings.append(Problem("excluded", f"{len(excluded)} participants excluded as invalid (see excluded_participants.csv)",
                                severity="warning"))
    if col.bad_outcome_lines:
        n_before = len(outs)
        outs = outs[~outs["__line"].isin(col.bad_outcome_lines)]
        if n_before - len(outs):
            warnings.append(Problem("excluded_rows", f"{n_before - len(outs)} invalid outcome rows excluded", severity="warning"))
    parts = parts[(parts["trial"] != "") & (parts["participant"] != "")]
    return Dataset(
        path=folder, config=cfg,
        participants=parts.drop(columns="__line").reset_index(drop=True),
        outcomes=outs.drop(columns="__line").reset_index(drop=True),
        received=received, excluded=excluded, warnings=warnings,
        implausible=(pd.concat(col.implausible, ignore_index=True) if col.implausible
                     else pd.DataFrame(columns=["trial", "participant", "covariate", "value"])),
        small_trials=small,
    )


def _exclusions(parts: pd.DataFrame, col: ProblemCollector) -> pd.DataFrame:
    rows = []
    for trial, code in col.bad_trials.items():
        for pid in parts.loc[parts["trial"] == trial, "participant"]:
            rows.append((trial, pid, f"trial: {code}"))
    in_bad_trial = set(col.bad_trials)
    for (trial, pid), code in col.bad_participants.items():
        if trial not in in_bad_trial:
            rows.append((trial, pid, code))
    ex = pd.DataFrame(rows, columns=["trial", "participant", "reason"])
    return ex.drop_duplicates(["trial", "participant"]).reset_index(drop=True)
