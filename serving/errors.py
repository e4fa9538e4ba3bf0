"""Readable 422 bodies that name every bad field, without echoing the values back or logging them.

Body::

    {"message": "2 invalid fields: patient.age, patient.shoe_size",
     "detail": [{"loc": ["body", "patient", "age"], "field": "patient.age", "type": "less_than_equal",
                 "msg": "Input should be less than or equal to 100",
                 "expected": "a number from 18 to 100 years, or null/absent if unknown"}, ...]}

In a batch, ``field`` reads ``patients[3].age`` and the item carries ``patient_index: 3``.
"""
from __future__ import annotations

import logging
from typing import Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.fields import field_item, items_body
from serving.logs import LOGGER, request_id_of, route_template
from serving.requirements import raw_problems
from serving.scoring import SCORING_ENDPOINTS, ScoringRefused
from serving.batch import BATCH_ROUTE, check_patients

log = logging.getLogger(LOGGER)


def validation_body(errors: Sequence[dict], hints: dict[str, str], max_batch: int) -> dict:
    return items_body([field_item(e, hints, max_batch) for e in errors])


def _count_invalid(request: Request, n_errors: int, error_type: str) -> None:
    route = route_template(request.scope)
    scoring = request.app.state.scoring
    if route in SCORING_ENDPOINTS:
        scoring.count_invalid(route, request_id_of(request.scope), n_errors, error_type)
    else:
        # Only counts and types: the fields' values (and the messages, which may quote them) stay out of logs.
        log.info("invalid request", extra={"request_id": request_id_of(request.scope), "route": route,
                                           "n_errors": n_errors, "error_type": error_type})


async def request_validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    models = request.app.state.models
    body = validation_body(exc.errors(), models.hints, request.app.state.settings.max_batch)
    route = route_template(request.scope)
    if route == BATCH_ROUTE and isinstance(exc.body, dict) and isinstance(exc.body.get("patients"), list):
        # the request itself is refused: its patients' problems are named too (every problem at once)
        asked = exc.body.get("outcomes")
        outcomes = [o for o in asked if o in models.needs.by_outcome] if models.needs is not None and \
            isinstance(asked, list) and all(isinstance(o, str) for o in asked) else []
        named = {i["field"] for i in body["detail"]}
        checked = check_patients(models.patient, exc.body["patients"], models.needs, outcomes or None, models.hints,
                                 request.app.state.settings.max_batch)
        extra = [i for i in checked.items if i["field"] not in named]
        if extra:
            body = items_body(body["detail"] + extra)
    elif route in SCORING_ENDPOINTS and models.needs is not None:
        # the baselines the outcomes requested need, checked on the body as sent: every problem at once
        named = {i["field"] for i in body["detail"]}
        extra = [i for i in raw_problems(models.needs, exc.body) if i["field"] not in named]
        if extra:
            body = items_body(body["detail"] + extra)
    _count_invalid(request, len(body["detail"]), "RequestValidationError")
    return JSONResponse(status_code=422, content=body)


def refusal_body(refused: ScoringRefused) -> dict:
    """The 422 body when the model refused the input after the schema accepted it (already counted)."""
    items = [{"loc": ["body"] + ([p.column] if p.column else []), "field": p.column or "body",
              "type": p.code, "msg": p.message,
              **({"patient_index": int(p.row)} if p.row is not None else {})} for p in refused.problems]
    names = list(dict.fromkeys(i["field"] for i in items))
    return {"message": f"the model refused the input: {len(items)} problem{'s' if len(items) != 1 else ''}"
                       + (f" ({', '.join(names[:20])})" if names else ""),
            "detail": items}


def failure_body(request_id: str | None) -> dict:
    """The 500 body when scoring failed (already logged by type)."""
    return {"detail": "scoring failed; quote the request id", "request_id": request_id}
