"""``lbp-benefit demo``: the main job on the embedded default data."""
from __future__ import annotations

from pathlib import Path

import typer


def demo(out: Path = typer.Option(Path("out/demo"), "--out", help="Folder for the demo's outputs.")) -> None:
    """Run the main job on the embedded default: check and harmonise the shipped example dataset."""
    from lbp_benefit.cmd_check import run_check
    from training.example import example_data_dir

    run_check(example_data_dir(), None, out=out, drop_invalid=False)
