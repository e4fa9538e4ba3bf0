"""``lbp-benefit config``: the study config's JSON Schema, a draft from the data, and a check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

config_app = typer.Typer(help="The study config (study.yaml): its JSON Schema, a draft from your data, a check.",
                         no_args_is_help=True, rich_markup_mode="markdown")


@config_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of study.yaml (for editors: yaml-language-server, VS Code)."""
    from training.config_schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@config_app.command("init")
def init(
    data: Path = typer.Option(..., "--data", help="Dataset folder with participants and outcomes tables."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the draft here (default: print it)."),
    active: Optional[str] = typer.Option(None, "--active", help="The intervention class (default: the most frequent class)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Draft a study.yaml from the data (column types, levels, observed ranges, weeks) for you to edit."""
    from predict.errors import LbpError
    from training.config_draft import draft_yaml

    text = draft_yaml(data, active)
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists() and not force:
        raise LbpError(f"{out} exists; pass --force to overwrite it")
    out.write_text(text, "utf-8")
    typer.echo(f"wrote {out} (a draft: check it, then run 'lbp-benefit check --data {data} --config {out}')")


@config_app.command("check")
def check(path: Path = typer.Argument(..., help="The study.yaml to check.")) -> None:
    """Check a study.yaml against the schema; prints one line per mistake (exit 2) or a summary."""
    from training.config import load_config

    cfg = load_config(path)
    kinds = ", ".join(f"{o} ({s.kind}{', baseline' if cfg.has_baseline(o) else ''})" for o, s in cfg.all_outcomes.items())
    typer.echo(f"{path}: ok - {len(cfg.covariates)} covariates, outcomes {kinds}, windows {', '.join(cfg.window_names)}")
