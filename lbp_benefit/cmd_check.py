"""``lbp-benefit check``: validate and harmonise a dataset; print the attrition report."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def run_check(data: Path, config: Optional[Path], out: Optional[Path], drop_invalid: bool) -> None:
    from rich.console import Console

    from lbp_benefit.progress import progress_over
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from lbp_benefit.attrition_text import attrition_table_text

    console = Console()
    ds = load_dataset(data, config, drop_invalid=drop_invalid)
    for w in ds.warnings:
        console.print(f"[yellow]warning[/yellow] {w}", markup=True, highlight=False)
    h = harmonise(ds, progress=progress_over)
    console.print(
        f"{ds.path}: {ds.n_trials} trials, {ds.n_participants} participants, "
        f"{len(ds.outcomes)} outcome rows (config: {ds.config.source})",
        highlight=False,
    )
    typer.echo(attrition_table_text(h.attrition))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        h.attrition.to_csv(out / "attrition.csv", index=False)
        h.analysis.to_csv(out / "analysis_data.csv", index=False)
        h.covariate_availability.to_csv(out / "covariate_availability.csv", index=False)
        if ds.excluded is not None and len(ds.excluded):
            ds.excluded.to_csv(out / "excluded_participants.csv", index=False)
        console.print(f"wrote {out}/attrition.csv, analysis_data.csv, covariate_availability.csv", highlight=False)


def check(
    data: Path = typer.Option(..., "--data", help="Dataset folder: participants.csv|parquet, outcomes.csv|parquet, optional study.yaml."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config YAML (overrides the folder's study.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write attrition.csv and the harmonised analysis data here."),
    drop_invalid: bool = typer.Option(
        False, "--drop-invalid", help="Exclude invalid participants/trials (counted in the attrition report) instead of stopping."
    ),
) -> None:
    """Validate and harmonise a dataset; print the attrition report. Exits 2 on invalid input."""
    run_check(data, config, out, drop_invalid)
