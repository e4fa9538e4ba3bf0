"""Scoring: ``POST /v1/score`` (one patient) and ``POST /v1/score/batch`` (up to LBP_MAX_BATCH).

Note: no ``from __future__ import annotations`` here: the endpoints are annotated with request
models generated at app creation, which FastAPI must see as classes, not strings.
"""
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from predict.errors import LbpError
from serving.errors import scorer_refusal
from serving.interface import is_synthetic, to_jsonable
from serving.logs import LOGGER, request_id_of
from serving.schemas import SYNTHETIC_WARNING, RequestModels

log = logging.getLogger(LOGGER)

_422_EXAMPLE = {
    "message": "2 invalid fields: patient.baseline_pain, patient.shoe_size",
    "detail": [
        {"loc": ["body", "patient", "baseline_pain"], "field": "patient.baseline_pain", "type": "less_than_equal",
         "msg": "Input should be less than or equal to 100", "expected": "a number from 0 to 100 (required)"},
        {"loc": ["body", "patient", "shoe_size"], "field": "patient.shoe_size", "type": "extra_forbidden",
         "msg": "unknown field: the model has no input of this name"},
    ],
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (when LBP_API_KEYS is set)."},
    413: {"description": "Request body larger than LBP_MAX_BODY_BYTES."},
    422: {"description": "Invalid input: every bad field is named (in a batch, with its patient_index).",
          "content": {"application/json": {"example": _422_EXAMPLE}}},
    500: {"description": "The model failed; quote the request_id."},
}


class ScoreJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson: the score results are trees of plain values (finite floats
    or null) built by the scorer, and a full result (~13 KB) renders about ten times faster than
    with the standard library, which was a sixth of a single-patient request."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _patient_dict(patient) -> dict:
    # Absent and null are the same: missing. The scorer sees only the values given.
    return patient.model_dump(by_alias=True, exclude_none=True)


def _score(request: Request, endpoint: str, patients: list[dict], comparator: str,
           outcomes: list[str] | None) -> list[dict] | JSONResponse:
    state = request.app.state
    metrics = state.metrics
    rid = request_id_of(request.scope)
    try:
        results = state.scorer.score(patients, comparator, list(outcomes) if outcomes else None)
    except LbpError as exc:
        return scorer_refusal(request, exc)
    except Exception as exc:  # noqa: BLE001 - the HTTP boundary; the message may quote input, so it is not logged
        metrics.inc(metrics.score_requests, (endpoint, "error"))
        log.error("scoring failed", extra={"request_id": rid, "route": endpoint, "model_id": state.model_id,
                                           "error_type": type(exc).__name__, "n_patients": len(patients)})
        return JSONResponse(status_code=500, content={"detail": "scoring failed; quote the request id",
                                                      "request_id": rid})
    if not isinstance(results, list) or len(results) != len(patients):
        metrics.inc(metrics.score_requests, (endpoint, "error"))
        log.error("scorer returned the wrong number of results",
                  extra={"request_id": rid, "route": endpoint, "model_id": state.model_id,
                         "n_patients": len(patients), "error_type": "ResultCountMismatch"})
        return JSONResponse(status_code=500, content={"detail": "scoring failed; quote the request id",
                                                      "request_id": rid})
    metrics.inc(metrics.score_requests, (endpoint, "ok"))
    metrics.inc(metrics.scored, (endpoint, comparator), amount=len(patients))
    log.info("scored", extra={"request_id": rid, "route": endpoint, "model_id": state.model_id,
                              "n_patients": len(patients)})
    if getattr(state.scorer, "json_results", False) is True:  # predict.Scorer: already plain JSON
        return results
    return to_jsonable(results)


def _envelope(request: Request, comparator: str) -> dict:
    scorer = request.app.state.scorer
    out: dict[str, Any] = {"model_id": request.app.state.model_id, "comparator": comparator}
    if is_synthetic(scorer.manifest):
        out["synthetic_data_warning"] = SYNTHETIC_WARNING
    return out


def build_router(models: RequestModels, dependencies: list) -> APIRouter:
    router = APIRouter(prefix="/v1/score", tags=["scoring"], dependencies=dependencies)
    ScoreRequest = models.score
    BatchScoreRequest = models.batch

    async def score(request: Request, body: ScoreRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Predict one patient's outcomes under exercise therapy and under the comparator, and the
        benefit of exercise. Any covariate may be absent; the baselines are required."""
        # One patient is about a millisecond of CPU: scored on the event loop itself, which is
        # faster under load than a hop to the thread pool and back (and GIL contention there).
        # Batches (up to LBP_MAX_BATCH patients) stay on the thread pool.
        results = _score(request, "/v1/score", [_patient_dict(body.patient)], body.comparator, body.outcomes)
        if isinstance(results, JSONResponse):
            return results
        return ScoreJSONResponse({**_envelope(request, body.comparator), "result": results[0]})

    def score_batch(request: Request, body: BatchScoreRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Score several patients against one comparator; results come in request order."""
        patients = [_patient_dict(p) for p in body.patients]
        request.app.state.metrics.observe(request.app.state.metrics.batch_size, len(patients))
        results = _score(request, "/v1/score/batch", patients, body.comparator, body.outcomes)
        if isinstance(results, JSONResponse):
            return results
        return ScoreJSONResponse({**_envelope(request, body.comparator), "results": results})

    router.add_api_route("", score, methods=["POST"], summary="Score one patient",
                         response_model=None, responses={200: {"model": models.score_response}, **ERROR_RESPONSES})
    router.add_api_route("/batch", score_batch, methods=["POST"], summary="Score a batch of patients",
                         response_model=None,
                         responses={200: {"model": models.batch_response}, **ERROR_RESPONSES})
    return router
