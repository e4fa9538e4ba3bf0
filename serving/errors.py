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
from typing import Any, Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.fields import field_path
from serving.logs import LOGGER, request_id_of, route_template
from serving.requirements import raw_problems
from serving.scoring import SCORING_ENDPOINTS, ScoringRefused

log = logging.getLogger(LOGGER)


def _item(err: dict, hints: dict[str, str], max_batch: int) -> dict:
    loc = list(err.get("loc", ()))
    kind = err.get("type", "")
    msg = err.get("msg", "invalid")
    item: dict[str, Any] = {"loc": loc, "field": field_path(loc), "type": kind, "msg": msg}
    last = loc[-1] if loc else None
    if kind == "extra_forbidden":
        item["msg"] = "unknown field: the model has no input of this name"
    elif kind == "missing":
        item["msg"] = "required field is missing"
    elif kind == "too_long" and last == "patients":
        item["msg"] = f"a batch holds at most {max_batch} patients; split it into several requests"
    elif kind == "value_error" and msg.startswith("Value error, "):
        item["msg"] = msg[len("Value error, "):]
    elif kind == "json_invalid":
        item["msg"] = "the body is not valid JSON"
    if len(loc) >= 3 and loc[0] == "body" and loc[1] == "patients" and isinstance(loc[2], int):
        item["patient_index"] = loc[2]
    if isinstance(last, str) and last in hints and kind != "extra_forbidden" and len(loc) >= 3:
        item["expected"] = hints[last]
    return item


def validation_body(errors: Sequence[dict], hints: dict[str, str], max_batch: int) -> dict:
    return items_body([_item(e, hints, max_batch) for e in errors])


def items_body(items: list[dict]) -> dict:
    """``{"message": "<n> invalid fields: ...", "detail": items}`` for error items in the format above
    (also the requirement problems of :mod:`serving.requirements`)."""
    names = list(dict.fromkeys(i["field"] for i in items))
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    return {"message": f"{len(names)} invalid field{'s' if len(names) != 1 else ''}: {shown}", "detail": items}


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
    if route_template(request.scope) in SCORING_ENDPOINTS and models.needs is not None:
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
