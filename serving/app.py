"""The app factory.

``create_app`` loads the model *before* the app exists (so a tampered or unreadable artifact
raises and nothing is ever served), generates the request models from its feature schema, and
wires small routers, dependency-injected auth, CORS, the body-size limit, metrics and JSON access
logs. At startup (lifespan) the model is warmed up by scoring one example patient; ``/readyz``
answers 200 only after that succeeded.

Run it with ``lbp-benefit serve --model PATH`` (which also refuses unauthenticated non-loopback
binds), or ``uvicorn --factory serving.app:create_app`` with ``LBP_MODEL_PATH`` set.
"""
from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from predict import __version__
from predict.errors import LbpError
from serving.auth import require_api_key, require_loopback_or_allowed
from serving.cds import routes as cds_routes
from serving.calculator import build_router as build_calculator_router
from serving.errors import request_validation_handler
from serving.interface import Loader, ScorerLike, check_scorer, default_loader, is_synthetic
from serving.limits import BodySizeLimitMiddleware
from serving.logs import LOGGER, AccessMiddleware
from serving.scoring import ScoringService
from serving.telemetry import Telemetry
from serving.routes import health, model, score
from serving.schemas import build_models
from serving.settings import ServingSettings

log = logging.getLogger(LOGGER)

DESCRIPTION = """Predicts a low-back-pain patient's individual benefit of exercise therapy versus an
alternative (the *comparator*), from a model trained on pooled individual-participant trial data.

Request bodies are validated against the loaded model's feature schema (units, plausible ranges and
categories are shown on each field). Send API keys as `X-API-Key` or `Authorization: Bearer` when the
server has keys configured. See `GET /v1/model` for the model card, and heed any
`synthetic_data_warning`."""


def load_scorer(path: str | Path, loader: Loader | None = None) -> ScorerLike:
    """Load and check a scorer; any failure (e.g. ``ArtifactError`` on a tampered artifact) propagates."""
    scorer = (loader or default_loader)(Path(path))
    return check_scorer(scorer)


def warm_up(scorer: ScorerLike) -> None:
    """Score one example patient (baselines only); raise if the model cannot."""
    patient = {name: 50.0 for name in scorer.baselines}
    result = scorer.score([patient], scorer.comparators[0], None)
    if not isinstance(result, list) or len(result) != 1 or not isinstance(result[0], dict):
        raise LbpError("model warm-up failed: the scorer did not return one result for one patient")


def create_app(scorer: ScorerLike | None = None, settings: ServingSettings | None = None, *,
               model_path: str | Path | None = None, loader: Loader | None = None) -> FastAPI:
    """Build the service for ``scorer``, or for the model at ``model_path`` (default: ``settings.model_path``,
    i.e. ``LBP_MODEL_PATH``) loaded with ``loader`` (default ``predict.Scorer.load``).

    Raises whatever loading raises (``ArtifactError`` for a tampered artifact) and :class:`LbpError`
    if there is no model or it lacks what the service needs.
    """
    settings = settings or ServingSettings()
    if scorer is None:
        path = model_path if model_path is not None else settings.model_path
        if path is None:
            raise LbpError("no model to serve: pass --model PATH or set LBP_MODEL_PATH")
        scorer = load_scorer(path, loader)
    else:
        check_scorer(scorer)
    model_id = str(scorer.manifest.get("model_id"))
    models = build_models(scorer, settings.max_batch)
    telemetry = Telemetry()
    scoring = ScoringService(scorer, models, telemetry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.warmup:
            try:
                await run_in_threadpool(warm_up, scorer)
            except Exception as exc:
                log.error("model warm-up failed", extra={"model_id": model_id, "error_type": type(exc).__name__})
                raise
        # The model and the app live as long as the process: collected once, then left out of every
        # later full garbage collection (each scanned ~283,000 objects of the default model, ~0.45 s,
        # every ~12 batches of 100 patients: a third of a batch's CPU; benchmarks/bench_batch_rows.py).
        gc.collect()
        gc.freeze()
        app.state.ready = True
        telemetry.ready.set(1)
        log.info("ready", extra={"model_id": model_id})
        try:
            yield
        finally:
            app.state.ready = False
            telemetry.ready.set(0)
            log.info("stopping", extra={"model_id": model_id})
            telemetry.close()

    app = FastAPI(
        title="lbp-benefit scoring service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    _openapi_with_real_examples(app, models)
    app.state.settings = settings
    app.state.scorer = scorer
    app.state.model_id = model_id
    app.state.models = models
    app.state.telemetry = telemetry
    app.state.scoring = scoring
    app.state.ready = False
    telemetry.ready.set(0)
    telemetry.model_info.labels(model_id, str(scorer.manifest.get("schema_version", "")),
                                str(is_synthetic(scorer.manifest)).lower()).set(1)

    guard = [Depends(require_api_key)] if settings.auth_enabled else [Depends(require_loopback_or_allowed)]
    app.include_router(score.build_router(models, guard))
    app.include_router(model.build_router(models, guard, public_card=settings.public_model_card))
    app.include_router(health.router)
    cds_router = cds_routes.build_router(scoring, settings)  # CDS Hooks: own JWT auth (docs/cds-hooks.md)
    app.include_router(cds_router)
    app.include_router(cds_routes.build_monitoring_router(cds_router.cds_service, guard))
    app.state.cds_service = cds_router.cds_service
    app.state.extra_metrics = [lambda: cds_routes.prometheus_text(cds_router.cds_service)]
    app.include_router(build_calculator_router(models, scorer))  # the web page; same access terms
    app.include_router(health.build_metrics_router(guard if settings.metrics_require_auth else []))
    app.add_exception_handler(RequestValidationError, request_validation_handler)

    # Added innermost first: the access log sees everything, CORS headers reach 413s too.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       path_limits={"/cds-services": settings.cds_max_body_bytes})
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(AccessMiddleware, telemetry=telemetry, model_id=lambda: model_id)

    log.info("model loaded", extra={"model_id": model_id, "schema_version": scorer.manifest.get("schema_version"),
                                    "synthetic": is_synthetic(scorer.manifest),
                                    "auth": "api-key" if settings.auth_enabled else
                                    ("off" if settings.allow_unauthenticated else "loopback-only")})
    return app


def _openapi_with_real_examples(app: FastAPI, models) -> None:
    """Render the OpenAPI document with the response examples as the model answered them: FastAPI
    drops null values from examples, and a real result has nulls (e.g. an interval not available)."""
    render = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schemas = render().get("components", {}).get("schemas", {})
            for name, example in models.response_examples.items():
                if name in schemas:
                    schemas[name]["examples"] = [example]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app_from_env() -> FastAPI:
    """App factory for worker processes (``uvicorn --factory serving.app:create_app_from_env``, used by
    ``lbp-benefit serve --workers N``): settings from the ``LBP_`` environment, JSON logs configured."""
    from serving.logs import configure_logging

    settings = ServingSettings()
    configure_logging(settings.log_level)
    return create_app(settings=settings)
