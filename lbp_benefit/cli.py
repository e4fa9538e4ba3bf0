"""``lbp-benefit``: one console command with subcommands.

User errors (bad data, bad config, bad arguments) exit non-zero with one clear message and
no traceback; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import sys

import typer

from predict import __version__
from predict.errors import LbpError, ValidationFailed

app = typer.Typer(
    name="lbp-benefit",
    help="Individual benefit of exercise therapy for persistent low back pain, from pooled trial IPD.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lbp-benefit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    """Individual benefit of exercise therapy for persistent low back pain."""
    _state["debug"] = debug


def _register() -> None:
    from lbp_benefit import (cmd_card, cmd_cds, cmd_check, cmd_config, cmd_demo, cmd_network, cmd_replicate,
                             cmd_score, cmd_serve, cmd_simulate, cmd_train, cmd_validate)

    app.command("check")(cmd_check.check)
    app.command("demo")(cmd_demo.demo)
    app.command("replicate")(cmd_replicate.replicate)
    app.command("train")(cmd_train.train)
    app.command("card")(cmd_card.card)
    app.command("score")(cmd_score.score)
    app.command("serve")(cmd_serve.serve)
    app.add_typer(cmd_cds.app, name="cds")
    app.command("network")(cmd_network.network)
    app.command("validate")(cmd_validate.validate)
    app.add_typer(cmd_config.config_app, name="config")
    app.command("simulate")(cmd_simulate.simulate)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one clear line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rc = app(args=args, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except ValidationFailed as exc:
        if debug:
            raise
        typer.echo(f"error: {exc.report()}", err=True)
        sys.exit(2)
    except LbpError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click usage errors (typer vendors click)
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        sys.exit(3)
    if isinstance(rc, int) and rc:
        sys.exit(rc)
