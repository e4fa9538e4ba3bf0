"""Liveness, readiness and Prometheus metrics (unauthenticated unless LBP_METRICS_REQUIRE_AUTH)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from serving.telemetry import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the model is loaded and warmed up",
            responses={503: {"description": "Not ready (starting, warm-up failed or shutting down)."}})
def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    if state.scorer is not None and state.ready:
        return JSONResponse({"status": "ready", "model_id": state.model_id})
    return JSONResponse({"status": "not ready", "model_id": state.model_id}, status_code=503)


def metrics(request: Request) -> Response:
    """Prometheus text exposition: request counts and latencies by route and status, scoring counts
    (of every worker process under ``serve --workers N``), and the CDS feedback override rates (read
    from their database, so the same in every worker)."""
    extra = "".join(f() for f in getattr(request.app.state, "extra_metrics", ()))
    return Response(request.app.state.telemetry.render() + extra.encode(), media_type=CONTENT_TYPE)


def build_metrics_router(dependencies: list) -> APIRouter:
    r = APIRouter(tags=["operations"], dependencies=dependencies)
    r.add_api_route("/metrics", metrics, methods=["GET"], summary="Prometheus metrics",
                    response_class=PlainTextResponse)
    return r
