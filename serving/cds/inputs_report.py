"""The machine-readable account of every model input, sent with each card as a CDS Hooks 2.0 card
``extension`` under the key :data:`EXTENSION_KEY` (schema in docs/cds-hooks.md).

For each input of the model (the baselines first, then the schema's order): ``status`` ``used``
(``read`` on a card without a prediction) with the value on the model's scale, the conversion applied and the source (FHIR resource
references, the code or questionnaire read, the date); or ``missing`` with every reason found
(a record problem naming the resource, a prefetch that could not be fetched, no code configured
for the input, or simply no value in the record). Plus everything in the record that was not used
(``not_used``), the values used that should be checked (``warnings``: count, by kind, items),
resources of another patient, prefetch fetch failures, search results sent incomplete
(``incomplete_prefetch``), whether the record says the patient has died (``deceased``) and what was
fetched from the FHIR server.
"""
from __future__ import annotations

import re
from typing import Any

from serving.cds.codes import Registry
from serving.cds.fhir_map import MapResult

EXTENSION_KEY = "org.lbp-benefit.inputs"
VERSION = 1
_REF = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")
PATIENT_FEATURES = ("age", "female")
CONDITION_FEATURES = ("episode_months",)
MEDICATION_FEATURES = ("lbp_medication",)


def feature_slots(reg: Registry) -> dict[str, tuple[str, ...]]:
    """The prefetch keys that can carry each mapped input."""
    slots: dict[str, set[str]] = {f: {"patient"} for f in PATIENT_FEATURES}
    for e in reg.observations:
        if e.feature:
            slots.setdefault(e.feature, set()).add("observations")
    slots.setdefault("bmi", set()).add("observations")
    for q in reg.questionnaires:
        slots.setdefault(q.feature, set()).add("questionnaires")
    for c in reg.conditions:
        slots.setdefault(c.feature or "episode_months", set()).add("conditions")
    for f in CONDITION_FEATURES:
        slots.setdefault(f, set()).add("conditions")
    for f in MEDICATION_FEATURES:
        slots.setdefault(f, set()).add("medications")
    return {f: tuple(sorted(s)) for f, s in slots.items()}


def _references(u: Any) -> list[str]:
    if u.reference:
        return [r.strip() for r in u.reference.split(",") if r.strip()]
    m = _REF.match(u.source or "")
    return [m.group(0)] if m else []


def why_missing(feature: str, mapped: MapResult, slots: dict[str, tuple[str, ...]]) -> list[dict]:
    """Every reason an input is missing: findings about it, failed fetches of its prefetch keys, no
    mapping configured, or no value in the record."""
    reasons = [{"kind": f.kind, "where": f.where, "message": f.message} for f in mapped.findings
               if f.feature == feature]
    carriers = slots.get(feature, ())
    not_sent = {f.where for f in mapped.findings if f.kind == "not_sent"}
    for key in carriers:
        if key in mapped.fetch_failed:
            sent = f"prefetch.{key}" not in not_sent
            reasons.append({"kind": "fetch_failed" if sent else "not_sent", "where": f"prefetch.{key}",
                            "message": f"{'could not be fetched' if sent else 'not sent'} ({mapped.fetch_failed[key]}): "
                                       "a value may exist"})
    if not carriers:
        reasons.append({"kind": "no_mapping", "where": None,
                        "message": "no FHIR code is configured for this input (see LBP_CDS_CODES)"})
    elif not reasons:
        reasons.append({"kind": "not_in_record", "where": None,
                        "message": "no value for this input in the data provided"})
    return reasons


def _by_kind(findings: list) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        out[f.kind] = out.get(f.kind, 0) + 1
    return out


def build(mapped: MapResult, names: list[str], labels: dict[str, str], slots: dict[str, tuple[str, ...]], *,
          prediction: bool, reason: str | None, band: str, fetched: list[str],
          units: dict[str, str | None] | None = None, not_predicted: dict[str, list[str]] | None = None) -> dict:
    """The extension object for one card (``slots``: :func:`feature_slots` of the registry).
    ``not_predicted``: on a card with a prediction, the outcomes the record did not allow and the
    baselines each needs (key ``not_predicted``, only when there are some)."""
    used = {u.feature: u for u in mapped.used}
    inputs = []
    for name in names:
        item: dict[str, Any] = {"name": name, "label": labels.get(name, name)}
        u = used.get(name)
        if u is not None:
            item.update(status="used" if prediction else "read", value=u.value, conversion=u.detail,
                        source={"references": _references(u), "code": u.code,
                                "date": u.when.isoformat() if u.when else None},
                        unit=(units or {}).get(name))
        else:
            item.update(status="missing", why=why_missing(name, mapped, slots))
        inputs.append(item)
    out = {
        "version": VERSION,
        "prediction": prediction,
        "reason": reason,
        "band": band,
        "inputs": inputs,
        "missing": [i["name"] for i in inputs if i["status"] == "missing"],
        "not_used": [{"kind": f.kind, "where": f.where, "message": f.message, "input": f.feature}
                     for f in mapped.findings],
        "warnings": {"count": len(mapped.warnings), "by_kind": _by_kind(mapped.warnings),
                     "items": [{"kind": f.kind, "where": f.where, "message": f.message, "input": f.feature}
                               for f in mapped.warnings]},
        "incomplete_prefetch": dict(mapped.incomplete),
        "deceased": mapped.deceased,
        "other_patient_resources": list(mapped.foreign),
        "fetch_failures": dict(mapped.fetch_failed),
        "fetched_from_fhir_server": list(fetched),
        "provided_prefetch": list(mapped.provided_keys),
    }
    if not_predicted:
        out["not_predicted"] = [{"outcome": o, "needs": list(names)} for o, names in not_predicted.items()]
    return out
