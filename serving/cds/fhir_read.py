"""Read a CDS Hooks ``prefetch`` into validated FHIR R4 resources of one patient.

Each resource is validated on its own with the ``fhir.resources.R4B`` models (R4 payloads parse
with them for the resources used here; the package's default models are R5), so one bad entry is
reported and skipped instead of sinking the whole Bundle. Resources of an unsupported type or
invalid are reported as :class:`Finding`\\ s and never used.

Two more things are collected for the caller (routes: the first stops the prediction, the second
changes what the card asks for):

* **another patient's resource** (a ``subject`` reference, or the Patient's ``id``, that is not
  ``context.patientId``): a record that mixes patients cannot be trusted for any input
  (``Collected.foreign``);
* **a fetch failure**: an ``OperationOutcome`` sent in place of a prefetch result (CDS Hooks 2.0: a
  client that could not fetch a prefetch template may send an OperationOutcome), or one with an
  ``error``/``fatal`` issue inside a search Bundle. It means "could not be read", not "no data"
  (``Collected.fetch_failed``: prefetch key → the outcome's diagnostics).

A search Bundle that says it holds more than was sent (a ``next`` link, or ``total`` above the
entries that match) is read as sent and reported as incomplete (``Collected.incomplete``): a more
recent value may be on a page the service did not get.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

SUPPORTED = ("Patient", "Observation", "Condition", "MedicationStatement", "QuestionnaireResponse")
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")


@dataclass
class Finding:
    """Something in the input that was not used, and why. ``kind``: invalid, unknown, contradictory,
    wrong_unit, out_of_range, stale, ignored, not_provided, other_site, other_patient, fetch_failed,
    incomplete, deceased; for values used but to be checked: implausible, approximate."""
    kind: str
    where: str
    message: str
    feature: str | None = None


@dataclass
class Candidate:
    """A value for one model input, on the model's scale, with where it came from and how."""
    value: float
    when: date | None
    source: str
    detail: str
    reference: str | None = None  # the FHIR resource, e.g. Observation/pain-1
    code: str | None = None       # system|code read


@dataclass
class Collected:
    patient: Any | None = None
    resources: dict[str, list] = field(default_factory=lambda: {t: [] for t in SUPPORTED if t != "Patient"})
    findings: list[Finding] = field(default_factory=list)
    provided_keys: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # resources of another patient
    fetch_failed: dict[str, str] = field(default_factory=dict)  # prefetch key -> OperationOutcome diagnostics
    incomplete: dict[str, str] = field(default_factory=dict)  # prefetch key -> why its Bundle is incomplete


def ref(resource: Any) -> str:
    rid = getattr(resource, "id", None)
    return f"{resource.get_resource_type()}/{rid}" if rid else f"{resource.get_resource_type()} (no id)"


def fhir_date(value: Any) -> tuple[date | None, str]:
    """A FHIR date/dateTime (object or partial string) as a date and its precision: day, month, year.
    A dateTime with a time zone is dated in UTC, like the service's "today" (UTC): an observation
    taken at 07:30 on 11 March in Tokyo (22:30 UTC on 10 March) is not "in the future" on 10 March UTC."""
    if isinstance(value, datetime):
        return (value.astimezone(timezone.utc) if value.tzinfo is not None else value).date(), "day"
    if isinstance(value, date):
        return value, "day"
    if isinstance(value, str):
        m = _PARTIAL.match(value)
        if m:
            y, mo, d = m.group(1), m.group(2), m.group(3)
            try:
                if d:
                    return date(int(y), int(mo), int(d)), "day"
                if mo:
                    return date(int(y), int(mo), 15), "month"
                return date(int(y), 7, 1), "year"
            except ValueError:
                return None, "invalid"
    return None, "none"


def _errors(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "__root__") or "(resource)"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _subject_ok(res: Any, patient_id: str, out: Collected) -> bool:
    subject = getattr(res, "subject", None)
    reference = getattr(subject, "reference", None) if subject is not None else None
    if not reference:
        out.findings.append(Finding("invalid", ref(res), "has no subject reference to the patient: not used"))
        return False
    pid = patient_of(reference)
    if pid is None:
        out.findings.append(Finding("unknown", ref(res), "its subject is not a Patient reference: not used"))
        return False
    if pid != patient_id:
        out.foreign.append(ref(res))
        out.findings.append(Finding("other_patient", ref(res),
                                    "belongs to another patient than the hook's context.patientId"))
        return False
    return True


def outcome_text(oo: dict) -> str:
    """The diagnostics (or details text, or code) of an OperationOutcome's issues, shortened."""
    parts = []
    for issue in oo.get("issue") or [] if isinstance(oo.get("issue"), list) else []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        text = issue.get("diagnostics") or details.get("text") or issue.get("code") or "error"
        parts.append(f"{issue.get('severity', 'error')}: {text}")
    return ("; ".join(str(p) for p in parts) or "OperationOutcome without issues")[:300]


def _is_failure(oo: dict) -> bool:
    issues = oo.get("issue") if isinstance(oo.get("issue"), list) else []
    return not issues or any(isinstance(i, dict) and i.get("severity") in ("error", "fatal") for i in issues)


def _paging(key: str, bundle: dict, entries: list, out: Collected) -> None:
    """Report a search Bundle that holds more than was sent: a ``next`` link, or a ``total`` above the
    number of entries whose ``search.mode`` is ``match`` (or not given)."""
    links = bundle.get("link") if isinstance(bundle.get("link"), list) else []
    paged = any(isinstance(link, dict) and link.get("relation") == "next" for link in links)
    matches = sum(1 for e in entries if isinstance(e, dict) and _mode(e) == "match")
    total = bundle.get("total")
    short = isinstance(total, int) and not isinstance(total, bool) and total > matches
    if not (paged or short):
        return
    why = (f"the search matched {total} resources and {matches} were sent" if short else
           "the search result has more pages (a 'next' link) that were not sent")
    out.incomplete[key] = why
    out.findings.append(Finding("incomplete", f"prefetch.{key}", f"{why}: what was sent is used, and a more recent "
                                                                  "or another value may exist on the pages not sent"))


def _mode(entry: dict) -> str:
    search = entry.get("search")
    return str(search.get("mode", "match")) if isinstance(search, dict) else "match"


CONDENSE_AFTER = 5  # findings of one kind about one input shown one by one; the rest counted


def condensed(findings: list[Finding]) -> list[Finding]:
    """A huge record's findings made readable: of each group (kind, input, resource type), the first
    :data:`CONDENSE_AFTER` are kept and the rest counted in one more finding (nothing is dropped
    silently)."""
    def group(f: Finding) -> tuple[str, str | None, str]:
        return f.kind, f.feature, f.where.split("/")[0].split(" ")[0]

    counts: dict[tuple[str, str | None, str], int] = {}
    out: list[Finding] = []
    for f in findings:
        n = counts[group(f)] = counts.get(group(f), 0) + 1
        if n <= CONDENSE_AFTER:
            out.append(f)
    for (kind, feature, rtype), n in counts.items():
        if n > CONDENSE_AFTER:
            out.append(Finding(kind, rtype, f"and {n - CONDENSE_AFTER} more like the {CONDENSE_AFTER} above ({n} in "
                                            "all), not listed one by one", feature))
    return out


def _entries(key: str, value: Any, out: Collected) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            out.findings.append(Finding("invalid", f"prefetch.{key}", "Bundle.entry is not a list: not used"))
            return []
        items = []
        for i, e in enumerate(entries):
            where = f"prefetch.{key}.entry[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
                out.findings.append(Finding("invalid", where, "entry has no resource: not used"))
                continue
            items.append((where, e["resource"]))
        _paging(key, value, entries, out)
        return items
    if isinstance(value, dict):
        return [(f"prefetch.{key}", value)]
    out.findings.append(Finding("invalid", f"prefetch.{key}", "is not a FHIR resource or Bundle: not used"))
    return []


def patient_of(reference: Any) -> str | None:
    """The Patient id a reference string points to (``Patient/<id>``, relative or absolute), else None."""
    m = _PATIENT_REF.search(reference) if isinstance(reference, str) else None
    return m.group(1) if m else None


def collect(prefetch: dict[str, Any], patient_id: str,
            screen: Callable[[str, dict], bool] | None = None) -> Collected:
    """Validate every prefetched resource; keep those of ``patient_id``; report the rest.
    ``screen(rtype, raw)``, if given, is asked first about each resource of a supported type: True
    means the caller has already reported it as not usable (e.g. far too old to matter) and it is
    neither validated nor kept, which keeps a record of thousands of old values fast."""
    out = Collected()
    seen: set[tuple[str, str]] = set()
    unsupported: dict[str, int] = {}
    for key, value in prefetch.items():
        if value is None:
            out.findings.append(Finding("not_provided", f"prefetch.{key}",
                                        "the CDS client has no data for this prefetch key"))
            continue
        if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
            out.fetch_failed[key] = outcome_text(value)
            out.findings.append(Finding("fetch_failed", f"prefetch.{key}", "the CDS client could not fetch it ("
                                        + out.fetch_failed[key] + "): what it holds is unknown, not absent"))
            continue
        out.provided_keys.append(key)
        for where, obj in _entries(key, value, out):
            rtype = obj.get("resourceType")
            if rtype == "OperationOutcome":
                if _is_failure(obj):  # an error inside a search result: the result is incomplete
                    out.fetch_failed[key] = outcome_text(obj)
                    out.findings.append(Finding("fetch_failed", f"prefetch.{key}", "the search reported an error ("
                                                + out.fetch_failed[key] + "): the result may be incomplete"))
                continue  # warnings and information: search notes from the client's FHIR server
            if rtype not in SUPPORTED:
                unsupported[str(rtype)] = unsupported.get(str(rtype), 0) + 1
                continue
            rid = obj.get("id")
            if isinstance(rid, str) and (rtype, rid) in seen:
                continue  # the same resource under two prefetch keys
            if screen is not None and screen(rtype, obj):
                if isinstance(rid, str):
                    seen.add((rtype, rid))
                continue
            try:
                res = get_fhir_model_class(rtype).model_validate(obj)
            except ValidationError as exc:
                label = f"{rtype}/{rid}" if isinstance(rid, str) else where
                out.findings.append(Finding("invalid", label, f"is not valid FHIR R4: {_errors(exc)}; not used"))
                continue
            if isinstance(rid, str):
                seen.add((rtype, rid))
            if rtype == "Patient":
                _take_patient(res, patient_id, out)
            elif _subject_ok(res, patient_id, out):
                out.resources[rtype].append(res)
    for rtype, n in sorted(unsupported.items()):
        out.findings.append(Finding("unknown", rtype, f"{n} resource{'s' if n > 1 else ''} of a type this service "
                                                      "does not read: not used"))
    return out


def _take_patient(res: Any, patient_id: str, out: Collected) -> None:
    if res.id != patient_id:
        out.foreign.append(ref(res))
        out.findings.append(Finding("other_patient", ref(res), "is not the hook's context.patientId"))
    else:
        out.patient = res
