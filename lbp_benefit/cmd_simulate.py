"""``lbp-benefit simulate``: write a SYNTHETIC pooled IPD dataset (with its truth) from a scenario."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lbp_benefit.wording import counted


def run_simulate(scenario: str, seed: int, out: Optional[Path], report: bool, participants: Optional[int],
                 mixed_fits: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    from predict.errors import LbpError
    from training.simulate import calibration_report, simulate_dataset

    if out is None and not report:
        raise LbpError("nothing to do: give --out FOLDER (write the dataset) and/or --report (print the calibration report)")
    if participants is not None and participants < 1:
        raise LbpError("--participants must be a positive number")
    if seed < 0:
        raise LbpError("--seed must be 0 or more")
    import sys

    console = Console(width=None if sys.stdout.isatty() else 220)
    sim = simulate_dataset(scenario, seed=seed, n_participants=participants)
    rep = calibration_report(sim) if report else None
    if rep is not None and mixed_fits and sim.scenario.published:
        import pandas as pd

        from lbp_benefit.progress import progress_over
        from training.meta.calibration import one_stage_rows

        extra = one_stage_rows(sim, progress=progress_over)
        if extra:
            rep = pd.concat([rep, pd.DataFrame(extra, columns=rep.columns)], ignore_index=True)
    if out is not None:
        if out.exists() and not out.is_dir():
            raise LbpError(f"--out {out} exists and is not a folder")
        sim.write(out, rep)
        console.print(
            f"wrote SYNTHETIC dataset {out}: scenario {sim.scenario.name}, seed {seed}, "
            f"{counted(len(sim.participants), 'participant')} in {counted(len(sim.scenario.trials), 'trial')}, "
            f"{len(sim.outcomes)} outcome rows; truth in {out / 'truth' / 'truth.csv'} (never an input)",
            highlight=False,
        )
    if rep is not None:
        table = Table(title=f"Calibration report (SYNTHETIC, scenario {sim.scenario.name}, seed {seed})")
        for c in ("section", "quantity", "published", "simulated", "accepted", "tolerance", "within"):
            table.add_column(c)

        def f(x: float) -> str:
            return "" if x != x else f"{x:.4g}"

        for r in rep.itertuples(index=False):
            acc = "" if r.lower != r.lower else f"{f(r.lower)} to {f(r.upper)}"
            table.add_row(r.section, r.quantity, f(r.published), f(r.simulated), acc, r.tolerance,
                          "yes" if r.within else "[bold red]no[/bold red]")
        console.print(table)
        fit = (rep["section"] == "interactions (fit)") | rep["section"].str.contains("one-stage", regex=False)
        console.print(
            f"within tolerance: {int(rep['within'].sum())} of {len(rep)} rows; "
            f"{int((~rep['within'] & ~fit).sum())} asserted rows out, {int((~rep['within'] & fit).sum())} informative fitted "
            f"rows out (about 5% expected by chance)",
            highlight=False,
        )
        if out is not None:
            console.print(f"wrote {out / 'calibration_report.csv'} and {out / 'calibration_report.md'}", highlight=False)


def simulate(
    scenario: str = typer.Option("hayden2020", "--scenario", help="Scenario name (hayden2020, none, strong, nonlinear, new_trial) or a YAML file."),
    seed: int = typer.Option(1, "--seed", help="Random seed; the same seed gives byte-identical files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write the dataset (and truth/) into."),
    report: bool = typer.Option(False, "--report", help="Print the calibration report (and write it into --out)."),
    participants: Optional[int] = typer.Option(None, "--participants", help="Total participants (arms resized in proportion), for scale tests."),
    mixed_fits: bool = typer.Option(True, "--mixed-fits/--no-mixed-fits",
                                    help="With --report, add one-stage mixed-model fits vs the published effects and interactions."),
) -> None:
    """Write a SYNTHETIC pooled IPD dataset calibrated to the published meta-analysis, with its truth."""
    run_simulate(scenario, seed, out, report, participants, mixed_fits)
