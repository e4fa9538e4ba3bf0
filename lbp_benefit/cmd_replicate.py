"""``lbp-benefit replicate``: the seed paper's one-stage IPD meta-analysis, on any dataset."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def replicate(
    out: Path = typer.Option(..., "--out", help="Report folder to write."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (default: the embedded synthetic default)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config YAML (overrides the folder's study.yaml)."),
    seed: int = typer.Option(1, "--seed", help="Simulator seed for the embedded default."),
    follow_up: Optional[List[str]] = typer.Option(None, "--follow-up", help="Follow-ups to analyse (repeatable; default all)."),
    comparison: Optional[List[str]] = typer.Option(None, "--comparison", help="Comparison sets (repeatable; default all)."),
    modifier: Optional[List[str]] = typer.Option(None, "--modifier", help="Candidate modifiers to analyse (repeatable; default all)."),
    residual: str = typer.Option("common", "--residual", help="'common' or 'by_trial' (trial-specific residual variances)."),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes."),
    no_forest: bool = typer.Option(False, "--no-forest", help="Skip subgroup forest plots."),
    strict: bool = typer.Option(False, "--strict", help="Treat data warnings (implausible values set to missing, ignored rows, small trials) as errors."),
    missing: str = typer.Option("complete_cases", "--missing", help="'complete_cases' (exclude participants missing a variable of the model) or 'mi' (multilevel multiple imputation with outcome and treatment, pooled by Rubin's rules; about M times slower)."),
    imputations: int = typer.Option(5, "--imputations", help="Number of imputations with --missing mi."),
) -> None:
    """Fit overall effects and treatment–covariate interactions; write tables, plots and long-form CSVs."""
    from lbp_benefit.data_source import SYNTHETIC_NOTE, load_source
    from lbp_benefit.progress import progress_over
    from predict.errors import LbpError
    from training.harmonise import harmonise
    from training.meta.replicate import replicate as run

    if residual not in ("common", "by_trial"):
        raise LbpError("--residual must be 'common' or 'by_trial'")
    if missing not in ("complete_cases", "mi"):
        raise LbpError("--missing must be 'complete_cases' or 'mi'")
    if imputations < 2:
        raise LbpError("--imputations must be >= 2")
    ds, synthetic = load_source(data, config, seed, strict=strict)
    if synthetic:
        typer.echo(SYNTHETIC_NOTE, err=True)
    h = harmonise(ds)
    cfg = ds.config
    for w in follow_up or []:
        if w not in cfg.window_names:
            raise LbpError(f"--follow-up {w!r} is not one of {', '.join(cfg.window_names)}")
    res = run(h, out, follow_ups=follow_up or None, comparisons=comparison or None,
              residual="by_group" if residual == "by_trial" else "common", workers=workers,
              progress=progress_over, forest=not no_forest, only_modifiers=modifier or None,
              missing=missing, imputations=imputations)
    if synthetic:
        from training.synthetic_label import label_folder

        (out / "SYNTHETIC_DATA.txt").write_text(SYNTHETIC_NOTE + "\n", "utf-8")
        label_folder(out)  # every figure (forest plots, PNG and SVG) carries the synthetic band
    h.attrition.to_csv(out / "attrition.csv", index=False)
    bad = res.interactions[res.interactions.status != "ok"]
    typer.echo((out / "report.md").read_text("utf-8").split("## Interactions")[0].rstrip())
    typer.echo(f"\n{len(res.interactions)} interaction models ({len(bad)} not ok); wrote {out}/")
