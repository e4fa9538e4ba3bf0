"""``lbp-benefit validate``: how well an exported model's outcome and benefit predictions hold in a
new trial (case-mix, outcome calibration, benefit discrimination/calibration, decision curve),
written as an HTML/JSON/CSV report folder; see docs/validate.md."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def validate(
    model: Path = typer.Option(..., "--model", help="Model artifact (folder or .zip), as written by `train`."),
    data: Path = typer.Option(..., "--data", help="The new trial: a dataset folder in the data format."),
    out: Path = typer.Option(..., "--out", help="Report folder to write (report.html, report.json, metrics.csv ...)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config for --data (default: its study.yaml, else the default)."),
    train_data: Optional[Path] = typer.Option(None, "--train-data", help="The model's training dataset folder (optional): "
                                              "exact case-mix differences and the membership-model C-statistic."),
    update: bool = typer.Option(False, "--update", help="Also recalibrate intercept/slope on the new trial (reported "
                                "separately; the model is never replaced)."),
    n_boot: int = typer.Option(200, "--n-boot", help="Bootstrap replicates for the confidence intervals."),
    seed: int = typer.Option(1, "--seed", help="Seed for matching and bootstrap."),
    label: str = typer.Option("", "--label", help="A line describing the validation (shown in the report)."),
    task: Optional[List[str]] = typer.Option(None, "--task", help="Only this model task, e.g. pain__short (repeatable; default all)."),
) -> None:
    """Validate a model's outcome and benefit predictions on a new trial."""
    from predict.errors import LbpError
    from training.validate import validate_model

    if n_boot < 20:
        raise LbpError("--n-boot must be at least 20")
    if not data.is_dir():
        raise LbpError(f"--data {data}: dataset folder not found")
    res = validate_model(model, data, out, config=config, train_data=train_data, update=update, n_boot=n_boot,
                         seed=seed, label=label, tasks=list(task) if task else None, log=lambda m: typer.echo(m, err=True))
    for w in res["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"wrote {out}/report.html, report.json, metrics.csv")
