"""``lbp-benefit cds``: the CDS Hooks service's configuration (see docs/cds-hooks.md)."""
from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(name="cds", help="CDS Hooks service: check its configuration.", no_args_is_help=True,
                  rich_markup_mode="markdown")


@app.command("check-config")
def check_config(
    model: Path = typer.Option(None, "--model", help="Also check against this model artifact (its inputs, "
                                                     "baselines and comparators)."),
) -> None:
    """Print the issuers, keys, codes, questionnaires, body sites, feedback database and FHIR fetch settings the
    CDS Hooks service would load from the LBP_CDS_* environment, and every problem. Exit 1 on an error."""
    from serving.cds.config_report import check_config as run_check
    from serving.settings import ServingSettings

    from pydantic import ValidationError

    try:
        settings = ServingSettings()
    except ValidationError as exc:  # a setting that does not parse: name every one
        for e in exc.errors():
            names = ", ".join(f"LBP_{str(p).upper()}" for p in e.get("loc", ()))
            typer.echo(f"error: {names}: {e.get('msg', 'invalid')}")
        raise typer.Exit(1) from None
    scorer = None
    if model is not None:
        from predict import Scorer
        scorer = Scorer.load(model)
    rep = run_check(settings, scorer)
    for line in rep.lines:
        typer.echo(line)
    for w in rep.warnings:
        typer.echo(f"warning: {w}")
    for e in rep.errors:
        typer.echo(f"error: {e}")
    typer.echo(f"{len(rep.errors)} error(s), {len(rep.warnings)} warning(s)")
    raise typer.Exit(1 if rep.errors else 0)
