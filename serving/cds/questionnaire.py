"""Questionnaires: which QuestionnaireResponses feed an input, and how a response is scored.

A registry entry (``questionnaires`` in codes.yaml or the site's ``LBP_CDS_CODES`` file) names the
questionnaire canonicals it accepts and how to score a response:

* ``instrument: odi`` — Oswestry Disability Index: the items are the 10 sections scored 0-5; the
  score is ``sum / (5 × answered) × 100`` (the ODI manual's rule for a missed or not applicable
  section: the total possible score drops by 5 per unanswered section), not scored when fewer than
  ``min_answered`` sections (default 9: the manual gives the rule for one missed section) are
  answered. A section with two statements marked counts the highest (the manual's rule).
* ``instrument: rmdq`` — Roland-Morris: 24 yes/no items (yes = 1); score = number of yes answers
  (0-24) → × 100/24. Default ``min_answered: 24``; when a site allows fewer, the yes fraction of
  the answered items is used (the same pro-rating as the ODI).
* ``instrument: sum`` — any other instrument: ``item_range: [low, high]`` per item, score = the
  mean answered item rescaled from ``low``-``high`` to 0-100 (= the pro-rated sum), with
  ``min_answered`` (default: every item).
* ``instrument: total`` (or no ``item_link_ids``) — read only the total item ``total_link_ids`` on
  ``scale``.

The total item is optional for the item-scored instruments: when both are present the items are
scored and a total that disagrees (by more than 0.5 on 0-100) is reported. Item answers are read
from ``valueInteger``/``valueDecimal``, ``valueBoolean`` (1/0), or ``valueCoding``: the
``ordinalValue`` (R4) / ``itemWeight`` (R5) extension, the entry's ``answer_values`` map (``code``
or ``system|code`` → value), the yes/no codes LOINC LA33-6/LA32-8 and v2-0136 Y/N, or a code that
is itself an integer.

Canonicals match with or without ``|version``: a configured URL without a version accepts every
version; a configured ``url|version`` accepts that version and a response that states no version
(reported); another version of a configured URL is reported, not silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from predict.errors import LbpError
from serving.cds.registry_entry import RegistryEntry

INSTRUMENTS = {
    "odi": {"n_items": 10, "item_range": (0.0, 5.0), "min_answered": 9, "multiple": "highest"},
    "rmdq": {"n_items": 24, "item_range": (0.0, 1.0), "min_answered": 24, "multiple": None},
    "sum": {"n_items": None, "item_range": None, "min_answered": None, "multiple": None},
    "total": {},
}
ORDINAL_URLS = ("http://hl7.org/fhir/StructureDefinition/ordinalValue",
                "http://hl7.org/fhir/StructureDefinition/itemWeight")
YES_NO = {("http://loinc.org", "LA33-6"): 1.0, ("http://loinc.org", "LA32-8"): 0.0,
          ("http://terminology.hl7.org/CodeSystem/v2-0136", "Y"): 1.0,
          ("http://terminology.hl7.org/CodeSystem/v2-0136", "N"): 0.0}
TOTAL_TOLERANCE = 0.5  # on 0-100


@dataclass(frozen=True)
class QuestionnaireEntry(RegistryEntry):
    """A questionnaire feeding ``feature`` (on 0-100), scored by ``instrument``."""
    feature: str
    urls: tuple[str, ...]
    instrument: str = "total"
    item_link_ids: tuple[str, ...] = ()
    total_link_ids: tuple[str, ...] = ()
    scale: tuple[float, float] | None = None  # of the total item
    item_range: tuple[float, float] | None = None
    min_answered: int | None = None
    answer_values: dict[str, float] = field(default_factory=dict)
    max_age_days: int | None = None


def _split(canonical: str) -> tuple[str, str | None]:
    base, _, version = canonical.partition("|")
    return base, (version or None)


def match(entries: tuple[QuestionnaireEntry, ...], canonical: str | None) -> tuple[QuestionnaireEntry | None, str]:
    """The entry for a response's ``questionnaire`` canonical, and a note ('' when exact)."""
    if not canonical:
        return None, "the response names no questionnaire"
    base, version = _split(canonical)
    other_versions = []
    for e in entries:
        for url in e.urls:
            cbase, cversion = _split(url)
            if cbase != base:
                continue
            if cversion is None or cversion == version:
                return e, ""
            if version is None:
                return e, f"the response states no version (configured {url})"
            other_versions.append(url)
    if other_versions:
        return None, f"version {version} of {base} is not configured (configured: {', '.join(other_versions)})"
    return None, ""


def _pair(v: Any, where: str, name: str) -> tuple[float, float] | None:
    if v is None:
        return None
    if (not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(x, (int, float)) for x in v)
            or not v[0] < v[1]):
        raise LbpError(f"CDS code registry {where}: {name} must be [low, high] with low < high")
    return (float(v[0]), float(v[1]))


def parse_entry(d: dict, where: str) -> QuestionnaireEntry:
    """One ``questionnaires`` entry of the registry, checked."""
    def err(msg: str) -> LbpError:
        return LbpError(f"CDS code registry {where}: {msg}")

    urls = d.get("urls")
    if not d.get("feature") or not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise err("a questionnaire needs feature and urls (canonical URLs, optionally with |version)")
    items = tuple(map(str, d.get("item_link_ids") or ()))
    totals = tuple(map(str, d.get("total_link_ids") or ()))
    instrument = d.get("instrument") or ("total" if not items else None)
    if instrument not in INSTRUMENTS:
        raise err(f"instrument must be one of {', '.join(INSTRUMENTS)}")
    spec = INSTRUMENTS[instrument]
    scale = _pair(d.get("scale"), where, "scale")
    if instrument == "total":
        if not totals or scale is None:
            raise err("a total-only questionnaire needs total_link_ids and the scale [low, high] of its total")
    else:
        if not items:
            raise err(f"instrument {instrument} needs item_link_ids (the linkIds of its items)")
        if spec["n_items"] is not None and len(items) != spec["n_items"]:
            raise err(f"instrument {instrument} has {spec['n_items']} items; item_link_ids lists {len(items)}")
        if len(set(items)) != len(items):
            raise err("item_link_ids has duplicates")
        if totals and scale is None:
            raise err("total_link_ids needs the scale [low, high] of the total")
    item_range = _pair(d.get("item_range"), where, "item_range") or spec.get("item_range")
    if instrument == "sum" and item_range is None:
        raise err("instrument sum needs item_range [low, high] of each item")
    min_answered = d.get("min_answered", spec.get("min_answered"))
    if instrument != "total":
        min_answered = len(items) if min_answered is None else min_answered
        if not isinstance(min_answered, int) or not 1 <= min_answered <= len(items):
            raise err(f"min_answered must be an integer from 1 to {len(items)}")
    values = d.get("answer_values") or {}
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
        raise err("answer_values maps answer codes (code or system|code) to numbers")
    age = d.get("max_age_days")
    if age is not None and (not isinstance(age, int) or age <= 0):
        raise err("max_age_days must be a positive integer")
    return QuestionnaireEntry(d["id"], str(d.get("label", d["id"])), str(d["feature"]), tuple(urls), instrument,
                              items, totals, scale, item_range, min_answered,
                              {str(k): float(v) for k, v in values.items()}, age)


# ----------------------------------------------------------------------------- scoring
@dataclass
class Scored:
    value: float | None  # on 0-100
    detail: str
    problems: list[tuple[str, str]]  # (finding kind, message)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _items(items: Any) -> list[Any]:
    out = []
    for it in items or []:
        out.append(it)
        out.extend(_items(it.item))
        for a in it.answer or []:
            out.extend(_items(a.item))
    return out


def _coding_value(c: Any, entry: QuestionnaireEntry) -> float | None:
    for ext in getattr(c, "extension", None) or []:
        if ext.url in ORDINAL_URLS and ext.valueDecimal is not None:
            return float(ext.valueDecimal)
    for key in (f"{c.system}|{c.code}", str(c.code)):
        if key in entry.answer_values:
            return entry.answer_values[key]
    if (c.system, c.code) in YES_NO:
        return YES_NO[(c.system, c.code)]
    code = str(c.code or "")
    return float(code) if code.lstrip("-").isdigit() else None


def answer_value(a: Any, entry: QuestionnaireEntry) -> float | None:
    """The numeric value of one answer, or None when it has none this service can read."""
    for v in (a.valueInteger, a.valueDecimal):
        if v is not None:
            return float(v)
    if a.valueBoolean is not None:
        return 1.0 if a.valueBoolean else 0.0
    if a.valueQuantity is not None and a.valueQuantity.value is not None:
        return float(a.valueQuantity.value)
    if a.valueCoding is not None:
        return _coding_value(a.valueCoding, entry)
    return None


def _total(by_link: dict[str, list], entry: QuestionnaireEntry) -> tuple[float | None, list[tuple[str, str]]]:
    answers = [a for link in entry.total_link_ids for a in by_link.get(link, [])]
    if not answers:
        return None, []
    nums = [v for a in answers if (v := answer_value(a, entry)) is not None]
    if len(nums) != 1:
        return None, [("invalid", f"needs exactly one numeric answer in the total item "
                                  f"{'/'.join(entry.total_link_ids)} (found {len(nums)}): total not used")]
    lo, hi = entry.scale
    if not lo <= nums[0] <= hi:
        return None, [("out_of_range", f"total {_fmt(nums[0])} is outside {_fmt(lo)}-{_fmt(hi)} for {entry.label}: "
                                       "total not used")]
    return (nums[0] - lo) / (hi - lo) * 100.0, []


def _from_items(by_link: dict[str, list], entry: QuestionnaireEntry) -> tuple[float | None, str, list[tuple[str, str]]]:
    lo, hi = entry.item_range
    values, problems, unread = [], [], []
    for link in entry.item_link_ids:
        answers = by_link.get(link, [])
        nums = [v for a in answers if (v := answer_value(a, entry)) is not None]
        if answers and not nums:
            unread.append(link)
            continue
        if not nums:
            continue
        bad = [v for v in nums if not lo <= v <= hi]
        if bad:
            problems.append(("out_of_range", f"item {link} answer {_fmt(bad[0])} is outside {_fmt(lo)}-{_fmt(hi)}: "
                                             "the item is not scored"))
            continue
        if len(nums) > 1 and INSTRUMENTS[entry.instrument].get("multiple") != "highest":
            problems.append(("invalid", f"item {link} has {len(nums)} answers: the item is not scored"))
            continue
        values.append(max(nums))
    if unread:
        problems.append(("unknown", f"items {', '.join(unread)} have answers without a numeric value this service "
                                    "can read (set answer_values): not scored"))
    n, need = len(values), entry.min_answered
    if n < need:
        problems.append(("invalid", f"{n} of {len(entry.item_link_ids)} items answered; {entry.label} needs at least "
                                    f"{need} to be scored: not scored"))
        return None, "", problems
    score = (sum(values) / n - lo) / (hi - lo) * 100.0
    if entry.instrument == "odi":
        how = f"ODI {_fmt(sum(values))} / (5 × {n} answered) × 100 = {_fmt(score)}"
    elif entry.instrument == "rmdq":
        how = f"RMDQ {_fmt(sum(values))} yes of {n} answered" + (
            f" = {_fmt(sum(values))}/24" if n == 24 else f", pro-rated to {_fmt(sum(values) / n * 24)}/24"
        ) + f" → {_fmt(score)} on 0-100"
    else:
        how = f"mean of {n} answered items {_fmt(sum(values) / n)} on {_fmt(lo)}-{_fmt(hi)} → {_fmt(score)} on 0-100"
    return score, how, problems


def score_response(qr: Any, entry: QuestionnaireEntry) -> Scored:
    """Score a completed QuestionnaireResponse by its entry's instrument."""
    by_link: dict[str, list] = {}
    for it in _items(qr.item):
        by_link.setdefault(it.linkId, []).extend(it.answer or [])
    total, problems = _total(by_link, entry) if entry.total_link_ids else (None, [])
    if entry.instrument == "total":
        if total is None and not problems:
            problems = [("invalid", f"has no answer in the total item {'/'.join(entry.total_link_ids)}: not used")]
        lo, hi = entry.scale
        detail = "" if total is None else (
            f"total {_fmt(lo + total / 100 * (hi - lo))} ({_fmt(lo)}-{_fmt(hi)}) → {_fmt(total)} on 0-100")
        return Scored(total, detail, problems)
    score, how, item_problems = _from_items(by_link, entry)
    problems += item_problems
    if score is None:
        return Scored(None, "", problems)
    if total is not None and abs(total - score) > TOTAL_TOLERANCE:
        problems.append(("contradictory", f"its total item gives {_fmt(total)} on 0-100 but its items score "
                                          f"{_fmt(score)}: the items' score is used"))
    return Scored(score, f"scored from the items: {how}", problems)
