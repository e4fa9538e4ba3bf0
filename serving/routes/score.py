"""Scoring: ``POST /v1/score`` (one patient) and ``POST /v1/score/batch`` (up to LBP_MAX_BATCH).

Note: no ``from __future__ import annotations`` here: the endpoints are annotated with request
models generated at app creation, which FastAPI must see as classes, not strings.
"""
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.batch import (BATCH_ROUTE, MISSING_BASELINE, check_patients, not_scored_body, reason_of, scorer_items,
                           warned_body)
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
         "msg": "unknown field 'shoe_size': the model has no input of this name"},
    ],
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (when LBP_API_KEYS is set)."},
    413: {"description": "Request body larger than LBP_MAX_BODY_BYTES."},
    422: {"description": "Invalid input: every bad field is named (in a batch, with its patient_index), including "
                         "each baseline the outcomes requested need but the patient lacks (type 'missing', with the "
                         "'outcomes' that need it). In a batch, a patient with a bad field does not fail the "
                         "request: that patient's result is null and the response's not_scored names the fields "
                         "and counts the patients by reason; 422 when no patient can be scored, or when the "
                         "request itself is bad (not JSON, an unknown key, patients not a list or over "
                         "LBP_MAX_BATCH, an unknown comparator or outcome).",
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
                   outcomes: list[str] | None, *, batch: bool, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    """Score one patient through the app's :class:`~serving.scoring.ScoringService` (``/v1/score``,
    the calculator; a batch goes to :func:`batch_response`) and answer: the envelope with
    ``result``, 422 if the model refused the input, 500 if it failed.

    First the requirement of the outcomes requested (``Scorer.requirement`` through
    :class:`serving.requirements.OutcomeNeeds`): a patient lacking a needed baseline is refused
    (422, every missing baseline named with the outcomes that need it)."""
    if batch:
        return batch_response(request, endpoint, patients, comparator, outcomes)
    service: ScoringService = request.app.state.scoring
    rid = request_id_of(request.scope)
    needs = service.models.needs
    items = needs.problems(patients[0], outcomes, ["body", "patient"]) if needs is not None else []
    if items:
        service.count_invalid(endpoint, rid, len(items), "MissingBaseline")
        return JSONResponse(status_code=422, content=items_body(items), headers=headers)
    try:
        results = service.score(patients, comparator, outcomes, endpoint=endpoint, request_id=rid)
    except ScoringRefused as exc:
        return JSONResponse(status_code=422, content=refusal_body(exc), headers=headers)
    except ScoringFailed:
        return JSONResponse(status_code=500, content=failure_body(rid), headers=headers)
    return ScoreJSONResponse({**service.envelope(comparator), **(extra or {}), "result": results[0]},
                             headers=headers)


def batch_response(request: Request, endpoint: str, patients: list, comparator: str,
                   outcomes: list[str] | None) -> JSONResponse:
    """Score a batch: each patient checked on its own (:func:`serving.batch.check_patients`), the
    good ones scored together, exactly as each alone; a patient with any bad field gets ``null`` and
    its problems go in ``not_scored`` (counted by reason). 422 only when no patient can be scored."""
    service: ScoringService = request.app.state.scoring
    models = service.models
    rid = request_id_of(request.scope)
    checked = check_patients(models.patient, patients, models.needs, outcomes, models.hints,
                             request.app.state.settings.max_batch)
    for attempt in (0, 1):  # once more if the scorer refuses single patients the schema accepted
        keep = [i for i, p in enumerate(checked.inputs) if p is not None]
        if not keep:
            service.count_invalid(endpoint, rid, len(checked.items), _error_type(checked.items))
            return JSONResponse(status_code=422, content=items_body(checked.items))
        try:
            scored = service.score([checked.inputs[i] for i in keep], comparator, outcomes, endpoint=endpoint,
                                   request_id=rid)
            break
        except ScoringRefused as exc:
            rows = scorer_items(exc.problems, keep) if attempt == 0 else None
            if rows is None:
                refused = refusal_body(exc)
                for item in refused["detail"]:  # the scorer indexes the patients it was given
                    if "patient_index" in item and item["patient_index"] < len(keep):
                        item["patient_index"] = keep[item["patient_index"]]
                return JSONResponse(status_code=422, content=refused)
            checked.drop(rows)
        except ScoringFailed:
            return JSONResponse(status_code=500, content=failure_body(rid))
    envelope = service.envelope(comparator)
    if checked.items:
        it = iter(scored)
        results = [None if p is None else next(it) for p in checked.inputs]
        not_scored = not_scored_body(checked.items)
        for reason, n in not_scored["by_reason"].items():
            service.telemetry.count_not_scored(endpoint, reason, n)
        log.info("patients not scored", extra={"request_id": rid, "route": endpoint, "n_patients": not_scored["count"],
                                               "n_errors": len(checked.items),
                                               "error_type": _error_type(checked.items)})
        envelope["not_scored"] = not_scored
    else:
        results = scored
    warned = warned_body(results)
    if warned is not None:  # scored, but with inputs few training participants had: counted, not hidden
        envelope["warned"] = warned
    return ScoreJSONResponse({**envelope, "results": results})


def _error_type(items: list[dict]) -> str:
    """The log's error type of a batch's problems (counts and types only, never values)."""
    return "MissingBaseline" if all(reason_of(i) == MISSING_BASELINE for i in items) else "ValidationError"


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
        """Score several patients against one comparator; results come in request order. A patient
        with a bad field does not fail the batch: its result is null and ``not_scored`` names every
        problem (with its patient_index) and counts the patients by reason."""
        request.app.state.scoring.telemetry.batch_size.observe(len(body.patients))
        return batch_response(request, BATCH_ROUTE, body.patients, body.comparator, body.outcomes)

    router.add_api_route("", score, methods=["POST"], summary="Score one patient",
                         response_model=None, responses={200: {"model": models.score_response}, **ERROR_RESPONSES})
    router.add_api_route("/batch", score_batch, methods=["POST"], summary="Score a batch of patients",
                         response_model=None,
                         responses={200: {"model": models.batch_response}, **ERROR_RESPONSES})
    return router
