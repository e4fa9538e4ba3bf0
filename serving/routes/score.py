"""Scoring: ``POST /v1/score`` (one patient) and ``POST /v1/score/batch`` (up to LBP_MAX_BATCH).

Note: no ``from __future__ import annotations`` here: the endpoints are annotated with request
models generated at app creation, which FastAPI must see as classes, not strings.
"""
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.errors import failure_body, items_body, refusal_body
from serving.logs import LOGGER, request_id_of
from serving.schemas import RequestModels
from serving.scoring import ScoringFailed, ScoringRefused, ScoringService

log = logging.getLogger(LOGGER)
_422_EXAMPLE = {
    "message": "2 invalid fields: patient.baseline_pain, patient.shoe_size",
    "detail": [
        {"loc": ["body", "patient", "baseline_pain"], "field": "patient.baseline_pain", "type": "less_than_equal",
         "msg": "Input should be less than or equal to 100",
         "expected": "a number from 0 to 100; required to predict pain; global_recovery needs this or "
                     "baseline_function; otherwise optional (when absent it is imputed and listed as missing)"},
        {"loc": ["body", "patient", "shoe_size"], "field": "patient.shoe_size", "type": "extra_forbidden",
         "msg": "unknown field: the model has no input of this name"},
    ],
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (when LBP_API_KEYS is set)."},
    413: {"description": "Request body larger than LBP_MAX_BODY_BYTES."},
    422: {"description": "Invalid input: every bad field is named (in a batch, with its patient_index), including "
                         "each baseline the outcomes requested need but the patient lacks (type 'missing', with the "
                         "'outcomes' that need it). In a batch, a patient lacking a needed baseline does not fail the "
                         "request: that patient's result is null and the response's not_scored names the fields; 422 "
                         "only when no patient can be scored.",
          "content": {"application/json": {"example": _422_EXAMPLE}}},
    500: {"description": "The model failed; quote the request_id."},
}


class ScoreJSONResponse(JSONResponse):
    """JSONResponse rendered by orjson: the score results are trees of plain values (finite floats
    or null) built by the scorer, and a full result (~13 KB) renders about ten times faster than
    with the standard library, which was a sixth of a single-patient request."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


MISSING_BASELINE = "missing_baseline"


def score_response(request: Request, endpoint: str, patients: list[dict], comparator: str,
                   outcomes: list[str] | None, *, batch: bool, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    """Score through the app's :class:`~serving.scoring.ScoringService` and answer: the envelope with
    ``result`` (or ``results`` for a batch), 422 if the model refused the input, 500 if it failed.

    First the requirement of the outcomes requested (``Scorer.requirement`` through
    :class:`serving.requirements.OutcomeNeeds`): one patient lacking a needed baseline is refused
    (422, every missing baseline named with the outcomes that need it); in a batch that patient's
    result is ``null``, ``not_scored`` names the fields, the others are scored (422 only when none can be)."""
    service: ScoringService = request.app.state.scoring
    rid = request_id_of(request.scope)
    needs = service.models.needs
    base = ["body", "patients"] if batch else ["body", "patient"]
    items: list[dict] = []
    if needs is not None:
        for i, p in enumerate(patients):
            items += needs.problems(p, outcomes, [*base, i] if batch else base)
    skipped = sorted({it["patient_index"] for it in items}) if batch else ([0] if items else [])
    if len(skipped) == len(patients):
        service.count_invalid(endpoint, rid, len(items), "MissingBaseline")
        return JSONResponse(status_code=422, content=items_body(items), headers=headers)
    left_out = set(skipped)
    keep = [i for i in range(len(patients)) if i not in left_out]
    try:
        results = service.score([patients[i] for i in keep] if left_out else patients, comparator, outcomes,
                                endpoint=endpoint, request_id=rid)
    except ScoringRefused as exc:
        refused = refusal_body(exc)
        for item in refused["detail"]:  # the scorer indexes the patients it was given
            if "patient_index" in item and item["patient_index"] < len(keep):
                item["patient_index"] = keep[item["patient_index"]]
        return JSONResponse(status_code=422, content=refused, headers=headers)
    except ScoringFailed:
        return JSONResponse(status_code=500, content=failure_body(rid), headers=headers)
    if not batch:
        return ScoreJSONResponse({**service.envelope(comparator), **(extra or {}), "result": results[0]},
                                 headers=headers)
    envelope = service.envelope(comparator)
    if left_out:
        it = iter(results)
        results = [None if i in left_out else next(it) for i in range(len(patients))]
        service.telemetry.count_not_scored(endpoint, MISSING_BASELINE, len(skipped))
        log.info("patients not scored", extra={"request_id": rid, "route": endpoint, "n_patients": len(skipped),
                                               "error_type": "MissingBaseline"})
        envelope["not_scored"] = {"count": len(skipped), **items_body(items)}
    return ScoreJSONResponse({**envelope, "results": results}, headers=headers)


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
