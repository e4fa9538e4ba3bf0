"""One bad patient never sinks (or silently passes) a batch: ``POST /v1/score/batch`` checks each
patient on its own, scores the good ones and names every problem of the others.

What stays a whole-request error (422, nothing scored): a body that is not JSON or not an object, an
unknown top-level key, ``patients`` that is not a list or holds 0 or more than ``LBP_MAX_BATCH``
items, a comparator or outcome the model does not have. These are about the request, not a patient:
the request model (:mod:`serving.schemas`) refuses them as before. And 422 when no patient of the
batch can be scored.

A patient is left unscored (its result ``null``) when any field is bad: an unknown field, a value of
the wrong type, outside the model's accepted range (an impossible value: the schema's limits), not one
of the allowed values (a category level, binary 0/1), a baseline the outcomes requested need but the
patient lacks, or a patient that is not a JSON object. Its problems are items in the field-error format
(:mod:`serving.errors`: ``loc``, ``field`` via :func:`serving.fields.field_path`, ``type``, ``msg``,
``patient_index``), counted by reason (:func:`reason_of`). A value inside the limits but unusual for the
trials (outside the range of most training participants) is not an error: the patient is scored and
its result carries the warning (the scorer's :mod:`predict.clinical_warnings`, the one owner of those
ranges and words).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from pydantic import BaseModel, ValidationError

from predict.clinical_warnings import count_warnings
from predict.errors import Problem
from serving.fields import field_item, field_path, items_body
from serving.requirements import MISSING_TYPE, OutcomeNeeds

BATCH_ROUTE = "/v1/score/batch"
BATCH_LOC = ("body", "patients")

# Reasons a patient is left unscored (the not_scored counts and the lbp_patients_not_scored_total label).
MISSING_BASELINE = "missing_baseline"
UNKNOWN_FIELD = "unknown_field"
WRONG_TYPE = "wrong_type"
OUT_OF_RANGE = "out_of_range"
NOT_ALLOWED = "not_allowed_value"
INVALID = "invalid"
REASONS = (MISSING_BASELINE, UNKNOWN_FIELD, WRONG_TYPE, OUT_OF_RANGE, NOT_ALLOWED, INVALID)

_RANGE_TYPES = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
_SCORER_CODES = {"required": MISSING_BASELINE, "unknown_field": UNKNOWN_FIELD, "bad_type": WRONG_TYPE,
                 "bad_input": WRONG_TYPE, "out_of_range": OUT_OF_RANGE, "bad_value": NOT_ALLOWED}


def reason_of(item: dict) -> str:
    """The reason (one of :data:`REASONS`) of one error item."""
    kind = str(item.get("type", ""))
    if kind == MISSING_TYPE and "outcomes" in item:
        return MISSING_BASELINE
    if kind == "extra_forbidden":
        return UNKNOWN_FIELD
    if kind in _RANGE_TYPES:
        return OUT_OF_RANGE
    if kind in ("literal_error", "enum"):
        return NOT_ALLOWED
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return WRONG_TYPE
    return _SCORER_CODES.get(kind, INVALID)


@dataclass
class CheckedBatch:
    """Each patient's scorer inputs (None when the patient cannot be scored) and the problems (error
    items with ``patient_index``) of those that cannot."""

    inputs: list[dict | None]
    items: list[dict] = field(default_factory=list)

    @property
    def left_out(self) -> list[int]:
        return sorted({int(i["patient_index"]) for i in self.items})

    def drop(self, items: list[dict]) -> None:
        """Leave out the patients of ``items`` too (problems found by the scorer)."""
        self.items += items
        for it in items:
            self.inputs[int(it["patient_index"])] = None


def check_patients(patient_model: type[BaseModel], patients: Sequence[Any], needs: OutcomeNeeds | None,
                   outcomes: Sequence[str] | None, hints: dict[str, str], max_batch: int) -> CheckedBatch:
    """Check every patient of a batch on its own with the request model of ``/v1/score`` (the same
    rules and words), then the baselines the outcomes requested need; every problem of a patient
    at once (a value present but invalid counts as given for the baseline check)."""
    inputs: list[dict | None] = []
    items: list[dict] = []
    for i, raw in enumerate(patients):
        loc = [*BATCH_LOC, i]
        try:
            p = patient_model.model_validate(raw)
        except ValidationError as exc:
            inputs.append(None)
            errs = [field_item({**e, "loc": (*loc, *e.get("loc", ()))}, hints, max_batch) for e in exc.errors()]
            named = {e["field"] for e in errs}
            if needs is not None and isinstance(raw, dict):
                errs += [it for it in needs.problems(raw, outcomes, loc) if it["field"] not in named]
            items += errs
            continue
        given = p.model_dump(by_alias=True, exclude_none=True)
        lacking = needs.problems(given, outcomes, loc) if needs is not None else []
        inputs.append(None if lacking else given)
        items += lacking
    return CheckedBatch(inputs, items)


def scorer_items(problems: Sequence[Problem], rows: Sequence[int]) -> list[dict] | None:
    """The scorer's problems (``ValidationFailed``; ``row`` indexes the patients it was given, which
    were the batch's ``rows``) as error items of those batch patients; None when a problem is not
    about one patient (then the request as a whole was refused)."""
    if any(p.row is None or not 0 <= int(p.row) < len(rows) for p in problems):
        return None
    out = []
    for p in problems:
        i = int(rows[int(p.row)])
        loc = [*BATCH_LOC, i] + ([p.column] if p.column else [])
        out.append({"loc": loc, "field": field_path(loc), "type": p.code, "msg": p.message, "patient_index": i})
    return out


def not_scored_body(items: list[dict]) -> dict:
    """The response's ``not_scored``: ``count`` (patients left out), ``by_reason`` (patients per
    reason; a patient with problems of two reasons counts in both), then ``message`` and ``detail``
    as in a 422 body."""
    patients: dict[str, set] = {}
    for it in items:
        patients.setdefault(reason_of(it), set()).add(int(it["patient_index"]))
    by_reason = {r: len(patients[r]) for r in REASONS if r in patients}
    return {"count": len({int(i["patient_index"]) for i in items}), "by_reason": by_reason, **items_body(items)}


def warned_body(results: Sequence[dict | None]) -> dict | None:
    """The response's ``warned`` (:func:`predict.clinical_warnings.count_warnings` over the scored
    patients' warnings), or None when no scored patient carries a warning about their own inputs."""
    warned = count_warnings(r.get("warnings") or () for r in results if r is not None)
    return warned if warned["count"] else None
