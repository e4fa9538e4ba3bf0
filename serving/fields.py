"""The error items of 422 bodies (and of a batch's ``not_scored``): how an item names the request
field it is about (``patient.baseline_pain``, ``patients[3].age``, from a pydantic/FastAPI location
such as ``["body", "patients", 3, "age"]``), a request-model error as an item, and the body of a list
of items. Used by the field errors (:mod:`serving.errors`), the requirement problems
(:mod:`serving.requirements`) and the batch checks (:mod:`serving.batch`), so every kind of item
names fields and words the same way."""
from __future__ import annotations

from typing import Any, Sequence

from predict.input_names import unknown_message


def field_path(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def field_item(err: dict, hints: dict[str, str], max_batch: int) -> dict:
    """One request-model error (pydantic/FastAPI ``errors()`` entry) as a 422 item (the format of
    :mod:`serving.errors`); an unknown field in :func:`predict.input_names.unknown_message`'s words
    (the closest of the patient's fields, the keys of ``hints``, suggested)."""
    loc = list(err.get("loc", ()))
    kind = err.get("type", "")
    msg = err.get("msg", "invalid")
    item: dict[str, Any] = {"loc": loc, "field": field_path(loc), "type": kind, "msg": msg}
    last = loc[-1] if loc else None
    if kind == "extra_forbidden":  # a patient's field: the scorer's words, with the closest input name
        patient = len(loc) >= 3 and loc[0] == "body" and loc[1] in ("patient", "patients") and isinstance(last, str)
        item["msg"] = unknown_message(str(last), hints if patient else ())
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


def items_body(items: list[dict]) -> dict:
    """``{"message": "<n> invalid fields: ...", "detail": items}`` for error items (:func:`field_item`)
    (also the requirement problems of :mod:`serving.requirements`)."""
    names = list(dict.fromkeys(i["field"] for i in items))
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    return {"message": f"{len(names)} invalid field{'s' if len(names) != 1 else ''}: {shown}", "detail": items}
