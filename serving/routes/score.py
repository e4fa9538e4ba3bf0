"""Scoring: ``POST /v1/score`` (one patient) and ``POST /v1/score/batch`` (up to LBP_MAX_BATCH).

Note: no ``from __future__ import annotations`` here: the endpoints are annotated with request
models generated at app creation, which FastAPI must see as classes, not strings.
"""
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.errors import failure_body, refusal_body
from serving.logs import request_id_of
from serving.schemas import RequestModels
from serving.scoring import ScoringFailed, ScoringRefused, ScoringService

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


def score_response(request: Request, endpoint: str, patients: list[dict], comparator: str,
                   outcomes: list[str] | None, *, batch: bool, headers: dict[str, str] | None = None) -> JSONResponse:
    """Score through the app's :class:`~serving.scoring.ScoringService` and answer: the envelope with
    ``result`` (or ``results`` for a batch), 422 if the model refused the input, 500 if it failed."""
    service: ScoringService = request.app.state.scoring
    rid = request_id_of(request.scope)
    try:
        results = service.score(patients, comparator, outcomes, endpoint=endpoint, request_id=rid)
    except ScoringRefused as exc:
        return JSONResponse(status_code=422, content=refusal_body(exc), headers=headers)
    except ScoringFailed:
        return JSONResponse(status_code=500, content=failure_body(rid), headers=headers)
    key, value = ("results", results) if batch else ("result", results[0])
    return ScoreJSONResponse({**service.envelope(comparator), key: value}, headers=headers)


def build_router(models: RequestModels, dependencies: list) -> APIRouter:
    router = APIRouter(prefix="/v1/score", tags=["scoring"], dependencies=dependencies)
    ScoreRequest = models.score
    BatchScoreRequest = models.batch

    async def score(request: Request, body: ScoreRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Predict one patient's outcomes under the intervention and under the comparator, and the
        benefit of the intervention. Any covariate may be absent; the baselines of the outcomes
        requested are required."""
        # One patient is about a millisecond of CPU: scored on the event loop itself, which is
        # faster under load than a hop to the thread pool and back (and GIL contention there).
        # Batches (up to LBP_MAX_BATCH patients) stay on the thread pool.
        return score_response(request, "/v1/score", [ScoringService.patient_inputs(body.patient)], body.comparator,
                              body.outcomes, batch=False)

    def score_batch(request: Request, body: BatchScoreRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Score several patients against one comparator; results come in request order."""
        patients = [ScoringService.patient_inputs(p) for p in body.patients]
        request.app.state.scoring.telemetry.batch_size.observe(len(patients))
        return score_response(request, "/v1/score/batch", patients, body.comparator, body.outcomes, batch=True)

    router.add_api_route("", score, methods=["POST"], summary="Score one patient",
                         response_model=None, responses={200: {"model": models.score_response}, **ERROR_RESPONSES})
    router.add_api_route("/batch", score_batch, methods=["POST"], summary="Score a batch of patients",
                         response_model=None,
                         responses={200: {"model": models.batch_response}, **ERROR_RESPONSES})
    return router
