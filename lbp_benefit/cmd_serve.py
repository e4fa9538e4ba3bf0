"""``lbp-benefit serve``: the HTTP scoring service (see docs/serving.md)."""
from __future__ import annotations

import os
from pathlib import Path

import typer


def serve(
    model: Path = typer.Option(None, "--model", envvar="LBP_MODEL_PATH", show_envvar=True,
                               help="Model artifact (folder or .zip) to serve (default: the embedded default "
                                    "model, trained on synthetic data on first use and cached under LBP_HOME)."),
    host: str = typer.Option("127.0.0.1", "--host", envvar="LBP_HOST", show_envvar=True,
                             help="Address to listen on. A non-loopback address needs API keys "
                                  "(or --allow-unauthenticated)."),
    port: int = typer.Option(8000, "--port", envvar="LBP_PORT", show_envvar=True, help="Port to listen on."),
    api_key_env: str = typer.Option("LBP_API_KEYS", "--api-key-env",
                                    help="Name of the environment variable holding the comma-separated API keys "
                                         "(keys are never passed on the command line)."),
    allow_unauthenticated: bool = typer.Option(False, "--allow-unauthenticated", envvar="LBP_ALLOW_UNAUTHENTICATED",
                                               show_envvar=True,
                                               help="Serve without API keys on a non-loopback address (only if "
                                                    "something in front of this server authenticates)."),
    cors_origin: list[str] = typer.Option(None, "--cors-origin",
                                          help="Origin allowed by CORS (repeatable; adds to LBP_CORS_ORIGINS)."),
    log_level: str = typer.Option("info", "--log-level", envvar="LBP_LOG_LEVEL", help="Log level of the JSON logs."),
    workers: int = typer.Option(1, "--workers", envvar="LBP_WORKERS", show_envvar=True, min=1,
                                help="Worker processes (one per core scales throughput: scoring is CPU-bound "
                                     "and Python holds one core per process). Each loads and verifies the model; "
                                     "/metrics adds up all workers (PROMETHEUS_MULTIPROC_DIR)."),
    check_only: bool = typer.Option(False, "--check-only",
                                    help="Load, verify and warm up the model, print its id, and exit without serving."),
) -> None:
    """Serve a model over HTTP: POST /v1/score, /v1/score/batch; GET /v1/model, /healthz, /readyz, /metrics."""
    from pydantic import SecretStr

    from predict.errors import LbpError
    from serving.app import create_app, warm_up
    from serving.logs import configure_logging
    from serving.settings import ServingSettings, check_bind

    base = ServingSettings()
    origins = [o for o in base.cors_origin_list + list(cors_origin or []) if o]
    settings = base.model_copy(update={
        "model_path": model,
        "host": host,
        "port": port,
        "api_keys": SecretStr(os.environ.get(api_key_env, "")),
        "allow_unauthenticated": allow_unauthenticated or base.allow_unauthenticated,
        "cors_origins": ",".join(origins),
        "log_level": log_level,
    })
    check_bind(host, settings)
    if model is None:
        from lbp_benefit.default_model import ensure_default_model
        from lbp_benefit.progress import progress_over

        typer.echo("no --model: serving the embedded default model (SYNTHETIC data, not for clinical use)", err=True)
        model = ensure_default_model(progress=progress_over, log=lambda m: typer.echo(m, err=True))
        settings = settings.model_copy(update={"model_path": model})
    if model is None:  # pragma: no cover - ensure_default_model returns a path or raises
        raise LbpError("no model to serve: pass --model PATH or set LBP_MODEL_PATH")
    if not check_only:
        configure_logging(log_level)
    app = create_app(settings=settings)  # raises (e.g. ArtifactError) on a tampered or unreadable model
    if check_only:
        warm_up(app.state.scorer)
        typer.echo(f"model {app.state.model_id} loaded, verified and warmed up")
        return

    import uvicorn

    # The standard asyncio event loop, not uvloop even where it is installed: /v1/score computes on
    # the loop, and under uvloop a few requests at concurrency 64 waited seconds (p99 6.3 s vs 0.33 s
    # with asyncio, same throughput; BENCHMARKS.md). HTTP parsing by httptools (a dependency).
    loop = "asyncio"
    # uvicorn's own access log would print raw paths and query strings: ours logs route templates only.
    if workers > 1:
        # Workers are fresh processes: they rebuild the app from the environment (the model was verified
        # and warmed up above, so a broken artifact fails here, before any worker starts).
        os.environ.update({"LBP_MODEL_PATH": str(model), "LBP_HOST": host, "LBP_PORT": str(port),
                           "LBP_API_KEYS": settings.api_keys.get_secret_value(),
                           "LBP_ALLOW_UNAUTHENTICATED": str(settings.allow_unauthenticated).lower(),
                           "LBP_CORS_ORIGINS": settings.cors_origins, "LBP_LOG_LEVEL": log_level})
        del app
        # /metrics adds up every worker's counts: prometheus_client's multiprocess mode, through files in
        # PROMETHEUS_MULTIPROC_DIR (the one given, emptied, or a fresh temporary one removed at exit).
        import shutil
        import tempfile

        from serving.telemetry import MULTIPROC_ENV, prepare_multiprocess_dir

        given = os.environ.get(MULTIPROC_ENV)
        metrics_dir = prepare_multiprocess_dir(given or tempfile.mkdtemp(prefix="lbp-metrics-"))
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        try:
            uvicorn.run("serving.app:create_app_from_env", factory=True, workers=workers, host=host, port=port,
                        access_log=False, log_config=None, log_level=log_level.lower(), server_header=False,
                        loop=loop)
        finally:
            if not given:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        return
    # uvicorn's own access log would print raw paths and query strings: ours logs route templates only.
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, log_level=log_level.lower(),
                server_header=False, loop=loop)
