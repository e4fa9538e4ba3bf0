"""Read what a model card draws on: the training run's report folder (non-participant-level
summaries) and the artifact manifest.

Required: ``run.json`` and ``tasks.csv`` in the report folder; ``model_id`` and ``created`` in the
manifest, and a synthetic flag in the manifest or ``run.json``. Everything else is optional and
is reported as "not available" in the card when absent. A file that is present but malformed
is an error (:class:`predict.errors.LbpError`) naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from predict.errors import LbpError

REQUIRED_FILES = ("run.json", "tasks.csv")
REQUIRED_MANIFEST = ("model_id", "created")

_COLS = {
    "tasks.csv": ("task",),
    "class_support.csv": ("task", "comparator", "trials", "participants"),
    "per_trial.csv": ("learner", "trial", "metric", "estimate", "ci_low", "ci_high"),
    "pooled.csv": ("learner", "metric", "estimate", "ci_low", "ci_high"),
    "r_loss.csv": ("learner", "r_loss"),
    "benefit_calibration.csv": ("predicted", "observed", "ci_low", "ci_high"),
    "attrition.csv": ("trial", "outcome", "received", "valid"),
    "covariate_availability.csv": ("trial", "covariate", "participants", "observed", "pct_missing", "collected"),
    "subgroup_performance.csv": ("task", "subgroup_variable", "subgroup_level", "metric", "estimate", "ci_low",
                                 "ci_high", "n", "n_trials"),
}


@dataclass
class TaskIecv:
    per_trial: pd.DataFrame | None = None
    pooled: pd.DataFrame | None = None
    r_loss: pd.DataFrame | None = None
    stack_weights: dict | None = None


@dataclass
class CardInputs:
    """Everything the card is built from (aggregate numbers only)."""

    report_dir: Path
    manifest: dict
    run: dict
    tasks: pd.DataFrame
    synthetic: bool
    class_support: pd.DataFrame | None = None
    iecv: dict[str, TaskIecv] = field(default_factory=dict)
    benefit_calibration: dict[str, pd.DataFrame] = field(default_factory=dict)
    plots: dict[str, bytes] = field(default_factory=dict)
    summaries: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    attrition: pd.DataFrame | None = None
    covariate_availability: pd.DataFrame | None = None
    subgroup_performance: pd.DataFrame | None = None
    available: dict[str, bool] = field(default_factory=dict)

    @property
    def selection(self) -> dict:
        return self.run.get("selection") or {}

    def task_names(self) -> list[str]:
        return [str(t) for t in self.tasks["task"]]

    def iecv_tasks(self) -> list[str]:
        return [t for t in self.task_names() if t in self.iecv and self.iecv[t].pooled is not None]


def _csv(path: Path, kind: str, required: bool = False) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise LbpError(f"model card: required file {path.name} is missing from the report folder {path.parent}")
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=list(_COLS.get(kind, ())))
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LbpError(f"model card: {path} is not a readable CSV ({exc})") from exc
    miss = [c for c in _COLS.get(kind, ()) if c not in df.columns]
    if miss and len(df.columns):
        raise LbpError(f"model card: {path} lacks column(s) {', '.join(miss)}")
    for c in _COLS.get(kind, ()):
        if c not in df.columns:
            df[c] = pd.Series(dtype=float)
    return df


def _json(path: Path, required: bool = False) -> Any:
    if not path.is_file():
        if required:
            raise LbpError(f"model card: required file {path.name} is missing from the report folder {path.parent}")
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LbpError(f"model card: {path} is not valid JSON ({exc})") from exc


def read_inputs(report_dir: Path | str, manifest: dict) -> CardInputs:
    """Load and check the report folder and manifest."""
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        raise LbpError(f"model card: report folder {report_dir} not found")
    if not isinstance(manifest, dict):
        raise LbpError("model card: the manifest must be a dict (the artifact's manifest.json)")
    miss = [k for k in REQUIRED_MANIFEST if not manifest.get(k)]
    if miss:
        raise LbpError(f"model card: the manifest lacks {', '.join(miss)}")
    run = _json(report_dir / "run.json", required=True)
    if not isinstance(run, dict):
        raise LbpError(f"model card: {report_dir / 'run.json'} must be a JSON object")
    tasks = _csv(report_dir / "tasks.csv", "tasks.csv", required=True)
    syn = manifest.get("synthetic", run.get("synthetic"))
    if not isinstance(syn, bool):
        raise LbpError("model card: neither the manifest nor run.json says whether the training data were synthetic "
                       "('synthetic': true/false); a card cannot be written without it")
    if manifest.get("synthetic") is not None and run.get("synthetic") is not None and \
            bool(manifest["synthetic"]) != bool(run["synthetic"]):
        raise LbpError("model card: the manifest and run.json disagree on whether the training data were synthetic")
    inp = CardInputs(report_dir, manifest, run, tasks, syn)
    inp.class_support = _csv(report_dir / "class_support.csv", "class_support.csv")
    inp.attrition = _csv(report_dir / "attrition.csv", "attrition.csv")
    inp.covariate_availability = _csv(report_dir / "covariate_availability.csv", "covariate_availability.csv")
    inp.subgroup_performance = _csv(report_dir / "subgroup_performance.csv", "subgroup_performance.csv")
    for t in inp.task_names():
        d = report_dir / "iecv" / t
        if d.is_dir():
            inp.iecv[t] = TaskIecv(
                per_trial=_csv(d / "per_trial.csv", "per_trial.csv"),
                pooled=_csv(d / "pooled.csv", "pooled.csv"),
                r_loss=_csv(d / "r_loss.csv", "r_loss.csv"),
                stack_weights=_json(d / "stack_weights.json"),
            )
        for where in (report_dir / f"{t}__benefit_calibration.csv", report_dir / "plots" / f"{t}__benefit_calibration.csv"):
            bc = _csv(where, "benefit_calibration.csv")
            if bc is not None:
                inp.benefit_calibration[t] = bc
                break
        for kind in ("iecv_forest", "benefit_calibration"):
            p = report_dir / "plots" / f"{t}__{kind}.png"
            if p.is_file():
                inp.plots[p.name] = p.read_bytes()
        sm = {}
        for lr in ("effect_model", "risk_model", "constant"):
            s = report_dir / "summaries" / f"{t}__{lr}.csv"
            if s.is_file():
                try:
                    sm[lr] = pd.read_csv(s)
                except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                    raise LbpError(f"model card: {s} is not a readable CSV ({exc})") from exc
        if sm:
            inp.summaries[t] = sm
    inp.available = {
        "class_support.csv": inp.class_support is not None,
        "attrition.csv": inp.attrition is not None,
        "covariate_availability.csv": inp.covariate_availability is not None,
        "subgroup_performance.csv": inp.subgroup_performance is not None,
        "iecv": bool(inp.iecv_tasks()),
        "report.md": (report_dir / "report.md").is_file(),
    }
    return inp
