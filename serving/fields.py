"""How an error item names the request field it is about: ``patient.baseline_pain``,
``patients[3].age`` (from a pydantic/FastAPI location such as ``["body", "patients", 3, "age"]``).
Used by the field errors (:mod:`serving.errors`) and the requirement problems
(:mod:`serving.requirements`), so the two kinds of item name fields the same way."""
from __future__ import annotations

from typing import Any, Sequence


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
