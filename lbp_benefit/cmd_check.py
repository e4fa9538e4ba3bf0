"""``lbp-benefit check``: validate and harmonise a dataset; print the attrition report."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def run_check(data: Path, config: Optional[Path], out: Optional[Path], drop_invalid: bool, strict: bool = False) -> None:
    from rich.console import Console

    from lbp_benefit.progress import progress_over
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from lbp_benefit.attrition_text import attrition_table_text
    from lbp_benefit.wording import counted

    console = Console()
    from predict.errors import LbpError

    ds = load_dataset(data, config, drop_invalid=drop_invalid, strict=strict)
    for w in ds.warnings:
        console.print(f"[yellow]warning[/yellow] {w}", markup=True, highlight=False)
    h = harmonise(ds, progress=progress_over)
    console.print(
        f"{ds.path}: {counted(ds.n_trials, 'trial')}, {counted(ds.n_participants, 'participant')}, "
        f"{counted(len(ds.outcomes), 'outcome row')} (config: {ds.config.source})",
        highlight=False,
    )
    typer.echo(attrition_table_text(h.attrition))
    cfg = ds.config
    formed = h.analysis.groupby(["outcome", "follow_up"]).size() if len(h.analysis) else {}
    for o in cfg.all_outcomes:
        for w in cfg.window_names:
            n = int(formed.get((o, w), 0)) if len(h.analysis) else 0
            if n == 0 and (cfg.outcome(o).follow_up is None or w in cfg.outcome(o).follow_up):
                console.print(f"[yellow]note[/yellow] {o}/{w}: no participant can be analysed "
                              f"({_why(h.attrition, o, w, cfg)})", markup=True, highlight=False)
    if ds.small_trials:
        console.print(f"small trials (< {cfg.min_trial_size} participants): "
                      + ", ".join(f"{t} ({n})" for t, n in ds.small_trials.items()), highlight=False)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        h.attrition.to_csv(out / "attrition.csv", index=False)
        h.analysis.to_csv(out / "analysis_data.csv", index=False)
        h.covariate_availability.to_csv(out / "covariate_availability.csv", index=False)
        if ds.excluded is not None and len(ds.excluded):
            ds.excluded.to_csv(out / "excluded_participants.csv", index=False)
        if len(ds.implausible):
            ds.implausible.to_csv(out / "implausible_values.csv", index=False)
        console.print(f"wrote {out}/attrition.csv, analysis_data.csv, covariate_availability.csv", highlight=False)
    if not len(h.analysis):
        raise LbpError(f"{ds.path}: nothing can be analysed - no outcome has a participant with the follow-up "
                       "(and baseline, where the outcome has one) it needs; see the attrition report above")


def _why(att, outcome: str, window: str, cfg) -> str:
    a = att[att["outcome"] == outcome]
    if not len(a):
        return "the outcome is not in the data"
    if int(a["valid"].sum()) == int(a["not_collected"].sum()):
        return "no trial collected it"
    if cfg.has_baseline(outcome) and int(a["with_baseline"].sum()) == 0:
        return "no participant has a week-0 baseline"
    return f"no measurement in window {window!r}"


def check(
    data: Path = typer.Option(..., "--data", help="Dataset folder: participants.csv|parquet, outcomes.csv|parquet, optional study.yaml."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config YAML (overrides the folder's study.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write attrition.csv and the harmonised analysis data here."),
    drop_invalid: bool = typer.Option(
        False, "--drop-invalid", help="Exclude invalid participants/trials (counted in the attrition report) instead of stopping."
    ),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings (implausible values, ignored rows/columns, small trials) as errors."),
) -> None:
    """Validate and harmonise a dataset; print the attrition report. Exits 2 on invalid input or when nothing can be analysed."""
    run_check(data, config, out, drop_invalid, strict)
