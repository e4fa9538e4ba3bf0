"""``lbp-benefit demo``: the main job on the embedded default (synthetic) data."""
from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Folder for the demo's outputs."),
    seed: int = typer.Option(1, "--seed", help="Simulator seed."),
) -> None:
    """Simulate the calibrated default dataset, check and harmonise it, replicate the one-stage
    IPD meta-analysis (short term), train the embedded default model (first use only; cached)
    and score an example patient. Everything is SYNTHETIC: not for clinical use."""
    from lbp_benefit.cmd_check import run_check
    from lbp_benefit.data_source import SYNTHETIC_NOTE
    from lbp_benefit.progress import progress_over
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.meta.replicate import replicate
    from training.simulate import simulate_dataset

    typer.echo(SYNTHETIC_NOTE)
    data = out / "data"
    simulate_dataset("hayden2020", seed=seed).write(data)
    typer.echo(f"1/5 simulated the default dataset into {data} (truth kept apart in {data / 'truth'})")
    typer.echo("2/5 checking and harmonising it:")
    run_check(data, None, out=out / "check", drop_invalid=False)
    typer.echo("3/5 one-stage IPD meta-analysis (short term, all comparisons, every candidate modifier):")
    h = harmonise(load_dataset(data))
    res = replicate(h, out / "replicate", follow_ups=["short"], progress=progress_over)
    (out / "SYNTHETIC_DATA.txt").write_text(SYNTHETIC_NOTE + "\n", "utf-8")
    typer.echo((res.out / "report.md").read_text("utf-8").split("## Interactions")[0].rstrip())
    typer.echo(f"\nwrote {out}/ (check/, replicate/ with tables/, figures/, overall.csv, interactions.csv)")
    from lbp_benefit.default_model import ensure_default_model, example_text

    typer.echo("4/5 the embedded default model (trained on first use, then cached):")
    art = ensure_default_model(progress=progress_over, log=typer.echo)
    typer.echo(f"    artifact: {art} (model card: {art / 'card.md'})")
    typer.echo("5/5 scoring an example patient:")
    typer.echo(example_text())
    typer.echo("\nStart the scoring service with: .venv/bin/lbp-benefit serve   (then open http://127.0.0.1:8000/docs)")
