"""FHIR R4 resources → the model's inputs, with a report of what was used, converted, missing,
unknown or contradictory.

Rules (docs/cds-hooks.md): a value is used only when its code is in the registry, its unit is one
the registry accepts for that code and it lies on the code's scale; scores are rescaled linearly to
the model's 0-100 and every conversion is reported. Observations are dated by ``temporal`` (an
ongoing ``effectivePeriod`` is current); the most recent value within the code's ``max_age_days``
wins; two different values on that same day are contradictory and neither is used. An entry with a
``body_site`` group uses only Observations without a ``bodySite`` or with one in that group.
QuestionnaireResponses are scored by ``questionnaire``. Nothing is guessed: a value that looks like
it is on another scale is reported, not converted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from predict.schema import FeatureSchema
from serving.cds.codes import Code, ObservationEntry, Registry, canonical_system, system_note
from serving.cds.fhir_clinical import conditions_and_medications, patient_inputs
from serving.cds.fhir_read import (Candidate as _Cand, Collected, Finding, collect, condensed, fhir_date, patient_of,
                                   ref)
from serving.cds.questionnaire import score_response
from serving.cds.temporal import observation_when

UCUM = "http://unitsofmeasure.org"
OK_OBS_STATUS = ("final", "amended", "corrected")
BASELINE_RANGE = (0.0, 100.0)
BMI_TOLERANCE = 1.0  # kg/m2 between a recorded BMI and weight/height² of the same day


@dataclass
class Used:
    feature: str
    value: float
    source: str
    detail: str
    when: date | None = None
    reference: str | None = None
    code: str | None = None


@dataclass
class MapResult:
    inputs: dict[str, float]
    used: list[Used]
    findings: list[Finding]
    missing: list[str]
    provided_keys: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # resources of another patient: no prediction
    fetch_failed: dict[str, str] = field(default_factory=dict)  # prefetch key -> why it could not be fetched
    warnings: list[Finding] = field(default_factory=list)  # values used that should be checked (counted)
    deceased: str | None = None  # the record says the patient has died: no prediction
    incomplete: dict[str, str] = field(default_factory=dict)  # prefetch key -> why its Bundle is incomplete


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"


def _codings(concept: Any) -> list[Any]:
    return list(getattr(concept, "coding", None) or []) if concept is not None else []


def _code_list(concept: Any) -> str:
    cs = [Code(c.system or "", c.code or "").label() for c in _codings(concept)]
    if cs:
        return ", ".join(cs)
    text = getattr(concept, "text", None) if concept is not None else None
    return f"text only '{text}' (no coding)" if text else "(no coding)"


def _reason(concept: Any) -> str:
    """A dataAbsentReason as its code (or text)."""
    return next((c.code for c in _codings(concept) if c.code), None) or getattr(concept, "text", None) or "no code"


def _age_text(days: int) -> str:
    return f"{days} days" if days < 730 else f"{days} days ({days / 365.25:.1f} years)"


def _unit_of(entry: ObservationEntry) -> str:
    """The unit of an entry's value on the model's side (height m, weight kg, else the first unit)."""
    if entry.derive:
        return entry.derive.split("_")[-1]
    return next(iter(entry.units or {"": 1.0}))


VALUE_TYPES = ("valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger", "valueRange",
               "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod")


class _Component:
    """An Observation.component seen as an Observation: its own code, value and dataAbsentReason;
    status, time, subject and body site of the Observation it belongs to."""
    OWN = ("code", "dataAbsentReason", "interpretation", "referenceRange")

    def __init__(self, obs: Any, component: Any):
        self._obs, self._component = obs, component

    def __getattr__(self, name: str) -> Any:
        if name.startswith("value") or name in self.OWN:
            return getattr(self._component, name, None)
        return getattr(self._obs, name)


class _Mapper:
    def __init__(self, reg: Registry, today: date):
        self.reg, self.today = reg, today
        self.cands: dict[str, list[_Cand]] = {}
        self.derived: dict[str, list[_Cand]] = {}
        self.findings: list[Finding] = []
        self.warnings: list[Finding] = []  # values used, to be checked (implausible, approximate)
        self.unknown: dict[str, list[str]] = {}
        self.deceased: str | None = None

    def add(self, feature: str, cand: _Cand, derived: bool = False) -> None:
        (self.derived if derived else self.cands).setdefault(feature, []).append(cand)

    def bad(self, kind: str, where: str, msg: str, feature: str | None = None) -> None:
        self.findings.append(Finding(kind, where, msg, feature))

    def fresh(self, when: date | None, max_age: int | None, where: str, feature: str | None,
              label: str = "this input") -> bool:
        if when is None:
            self.bad("invalid", where, "has no effective date, so it cannot be dated as a baseline: not used", feature)
            return False
        if when > self.today:
            self.bad("invalid", where, f"is dated in the future ({when.isoformat()}): not used", feature)
            return False
        age = (self.today - when).days
        if max_age is not None and age > max_age:
            self.bad("stale", where, f"is {_age_text(age)} old ({when.isoformat()}), older than the {max_age}-day limit "
                                     f"for {label}: not used", feature)
            return False
        return True

    def warn(self, kind: str, where: str, msg: str, feature: str | None = None) -> None:
        """A value that is used but should be checked (counted on the card and in its extension)."""
        self.warnings.append(Finding(kind, where, msg, feature))

    # ------------------------------------------------------------------ Observation
    def screen(self, rtype: str, raw: dict, patient_id: str) -> bool:
        """Report, before FHIR validation, an Observation that is certainly too old to be used: the
        patient's, final, one registry code, no component, body site or dataAbsentReason, dated by an
        ``effectiveDateTime`` more than a day beyond its code's limit (the day of margin covers the
        time zone, which the full path reads). Anything else goes through the full path. A flowsheet
        of thousands of old scores is then read in milliseconds instead of seconds; the finding is
        the one the full path gives ("too old")."""
        if rtype != "Observation" or not isinstance(raw.get("id"), str) or raw.get("status") not in OK_OBS_STATUS:
            return False
        if any(k in raw for k in ("component", "bodySite", "dataAbsentReason", "effectivePeriod")):
            return False
        subject = raw.get("subject")
        if not isinstance(subject, dict) or patient_of(subject.get("reference")) != patient_id:
            return False
        code = raw.get("code")
        codings = code.get("coding") if isinstance(code, dict) else None
        if not isinstance(codings, list):
            return False
        hits = [(c, e) for c in codings if isinstance(c, dict)
                and (e := self.reg.observation_for(c.get("system"), c.get("code")))]
        if len(hits) != 1:
            return False
        coding, entry = hits[0]
        limit = entry.max_age_for(coding.get("system"), coding.get("code"))
        when = fhir_date(raw.get("effectiveDateTime"))[0] if isinstance(raw.get("effectiveDateTime"), str) else None
        if limit is None or when is None or (self.today - when).days <= limit + 1:
            return False
        return not self.fresh(when, limit, f"Observation/{raw['id']}", entry.feature or entry.derive, entry.label)

    def observation(self, obs: Any) -> None:
        """An Observation, and each of its components whose code the registry reads (a component has
        its own code and value and shares the Observation's status, time, subject and body site)."""
        parts = [(obs, ref(obs))] + [(_Component(obs, c), f"{ref(obs)} component[{i}]")
                                     for i, c in enumerate(obs.component or [])]
        read = False
        for part, where in parts:
            match = next(((c, e) for c in _codings(part.code) if (e := self.reg.observation_for(c.system, c.code))),
                         None)
            if match is not None:
                read = True
                self._entry(part, where, *match)
        if not read:
            codes = [_code_list(obs.code)] + [_code_list(c.code) for c in obs.component or []]
            self.unknown.setdefault("Observation", []).append(
                codes[0] + (f" with components {', '.join(codes[1:])}" if len(codes) > 1 else ""))

    def _entry(self, obs: Any, where: str, coding: Any, entry: ObservationEntry) -> None:
        target = entry.feature or entry.derive
        if obs.status not in OK_OBS_STATUS:
            why = {"entered-in-error": "was entered in error", "cancelled": "was cancelled",
                   "preliminary": "is preliminary", "registered": "has no result yet"}.get(obs.status, "is not final")
            self.bad("ignored", where, f"has status '{obs.status}' ({why}; only final, amended or corrected "
                                       "values are used): not used", target)
            return
        if obs.dataAbsentReason is not None:
            self.bad("ignored", where, f"carries a dataAbsentReason ({_reason(obs.dataAbsentReason)}) instead of a "
                                       "value: not usable", target)
            return
        if entry.body_site and not self._site_ok(obs, entry, where, target):
            return
        when = observation_when(obs, self.today, ongoing=entry.kind == "coded")
        if not when.current and not self.fresh(when.day, entry.max_age_for(coding.system, coding.code),
                                               where, target, entry.label):
            return
        got = {"score": self._score, "quantity": self._quantity, "coded": self._coded}[entry.kind](obs, entry, where)
        if got is not None:
            value, detail = got
            code = Code(canonical_system(coding.system) or "", coding.code or "")
            if system_note(coding.system):
                detail += f"; {system_note(coding.system)}"
            if when.current or not when.basis.startswith("effective") or when.precision != "day" \
                    or "start" in when.basis:
                detail += f"; {when.describe()}"
            self.add(target, _Cand(value, when.day, f"{where}, {code.short()}", detail, where,
                                   f"{code.system}|{code.code}"), bool(entry.derive))

    def _site_ok(self, obs: Any, entry: ObservationEntry, where: str, target: str | None) -> bool:
        if obs.bodySite is None:
            return True
        allowed = {c.key for c in self.reg.body_sites.get(entry.body_site, ())}
        if any((canonical_system(c.system), c.code) in allowed for c in _codings(obs.bodySite)):
            return True
        site = _code_list(obs.bodySite) if _codings(obs.bodySite) else (obs.bodySite.text or "(no coding)")
        self.bad("other_site", where, f"{entry.label} at body site {site}, not a {entry.body_site.replace('_', ' ')} "
                                      "site: not used", target)
        return False

    def _unit_factor(self, q: Any, entry: ObservationEntry, where: str) -> float | None:
        if q.system and canonical_system(q.system) != UCUM and q.code:
            self.bad("wrong_unit", where, f"unit '{q.code}' is not a UCUM unit (system {q.system}): not used",
                     entry.feature or entry.derive)
            return None
        unit = q.code if q.code is not None else (q.unit or "")
        if unit not in entry.units:
            accepted = ", ".join(f"'{u}'" if u else "no unit" for u in entry.units)
            self.bad("wrong_unit", where, f"unit '{unit}' is not accepted for {entry.label} (accepted: {accepted}): "
                                          "not converted, not used", entry.feature or entry.derive)
            return None
        return entry.units[unit]

    def _bound(self, obs: Any, entry: ObservationEntry, where: str) -> bool:
        """A valueQuantity with a comparator (``<``, ``>=``...) is a bound, not the value: not usable."""
        q = obs.valueQuantity
        if q is None or not q.comparator:
            return False
        self.bad("invalid", where, f"{entry.label} is given as a bound ('{q.comparator} {_fmt(float(q.value))}'), not a "
                                   "value: not usable", entry.feature or entry.derive)
        return True

    def _no_number(self, obs: Any, entry: ObservationEntry, where: str, needs: str) -> None:
        kind = next((k for k in VALUE_TYPES if getattr(obs, k, None) is not None), None)
        what = f"its value is a {kind}" if kind else "it has no value"
        self.bad("invalid", where, f"{what}, and {entry.label} needs {needs}: not usable", entry.feature or entry.derive)

    def _number(self, obs: Any, entry: ObservationEntry, where: str) -> tuple[float, float] | None:
        if self._bound(obs, entry, where):
            return None
        if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
            factor = self._unit_factor(obs.valueQuantity, entry, where)
            return None if factor is None else (float(obs.valueQuantity.value), factor)
        if obs.valueInteger is not None and entry.kind == "score":
            return float(obs.valueInteger), 1.0
        self._no_number(obs, entry, where, "a number (valueQuantity or valueInteger)")
        return None

    def _score(self, obs: Any, entry: ObservationEntry, where: str) -> tuple[float, str] | None:
        got = self._number(obs, entry, where)
        if got is None:
            return None
        raw = got[0] * got[1]
        lo, hi = entry.scale
        if not lo <= raw <= hi:
            hint = " (a 0-100 score sent under a 0-10 code?)" if hi <= 10 < raw <= 100 else ""
            self.bad("out_of_range", where, f"value {_fmt(raw)} is outside the {_fmt(lo)}-{_fmt(hi)} scale of "
                                            f"{entry.label}{hint}: not converted, not used", entry.feature)
            return None
        value = (raw - lo) / (hi - lo) * 100.0
        if (lo, hi) == (0.0, 100.0):
            return value, f"{_fmt(raw)} ({entry.label}), already on 0-100"
        return value, f"{_fmt(raw)} ({entry.label}) rescaled from {_fmt(lo)}-{_fmt(hi)} to {_fmt(value)} on 0-100"

    def _quantity(self, obs: Any, entry: ObservationEntry, where: str) -> tuple[float, str] | None:
        if self._bound(obs, entry, where):
            return None
        if obs.valueQuantity is None or obs.valueQuantity.value is None:
            self._no_number(obs, entry, where, "a valueQuantity")
            return None
        factor = self._unit_factor(obs.valueQuantity, entry, where)
        if factor is None:
            return None
        raw = float(obs.valueQuantity.value)
        value = raw * factor
        unit = obs.valueQuantity.code if obs.valueQuantity.code is not None else obs.valueQuantity.unit
        target = entry.feature or entry.derive
        shown = f"{_fmt(raw)} {unit}" + ("" if factor == 1.0 else f" = {_fmt(value)} {_unit_of(entry)}")
        if entry.possible and not entry.possible[0] <= value <= entry.possible[1]:
            lo, hi = entry.possible
            self.bad("out_of_range", where, f"{entry.label} {shown} is impossible (outside {_fmt(lo)}-{_fmt(hi)} "
                                            f"{_unit_of(entry)}; wrong unit?): not used", target)
            return None
        if entry.plausible and not entry.plausible[0] <= value <= entry.plausible[1]:
            lo, hi = entry.plausible
            self.warn("implausible", where, f"{entry.label} {shown} is outside the plausible {_fmt(lo)}-{_fmt(hi)} "
                                            f"{_unit_of(entry)}: used; check the record", target)
        return value, shown

    def _coded(self, obs: Any, entry: ObservationEntry, where: str) -> tuple[float, str] | None:
        if obs.valueBoolean is not None:
            return float(obs.valueBoolean), f"{entry.label}: {'yes' if obs.valueBoolean else 'no'}"
        for c in _codings(obs.valueCodeableConcept):
            ans = next((a for a in entry.answers if a.code.key == (canonical_system(c.system), c.code)), None)
            if ans is not None:
                if ans.value is None:
                    self.bad("unknown", where, f"answer {ans.code.label()} does not determine {entry.feature}: "
                                               "not used", entry.feature)
                    return None
                return float(ans.value), f"{entry.label}: {ans.code.display or ans.code.code} ({ans.code.short()})"
        self.bad("unknown", where, f"answer {_code_list(obs.valueCodeableConcept)} is not a known answer for "
                                   f"{entry.label}: not used", entry.feature)
        return None

    # ------------------------------------------------------------------ QuestionnaireResponse
    def questionnaire(self, qr: Any) -> None:
        where = ref(qr)
        entry, note = self.reg.questionnaire_for(qr.questionnaire)
        if entry is None:
            if note:
                self.bad("unknown", where, f"{note}: not used")
            else:
                self.unknown.setdefault("QuestionnaireResponse", []).append(str(qr.questionnaire))
            return
        if qr.status not in ("completed", "amended"):
            self.bad("ignored", where, f"has status '{qr.status}' (not completed): not used", entry.feature)
            return
        when = fhir_date(qr.authored)[0]
        if not self.fresh(when, entry.max_age_days, where, entry.feature):
            return
        scored = score_response(qr, entry)
        for kind, msg in scored.problems:
            self.bad(kind, where, msg, entry.feature)
        if scored.value is None:
            return
        detail = scored.detail + (f" ({note})" if note else "")
        self.add(entry.feature, _Cand(scored.value, when, f"{where} ({entry.label})", detail, where,
                                      str(qr.questionnaire)))


def _resolve(m: _Mapper, feature: str, cands: list[_Cand]) -> _Cand | None:
    """The most recent candidate; different values on that same day are contradictory."""
    latest = max(c.when for c in cands)
    top = [c for c in cands if c.when == latest]
    if max(c.value for c in top) - min(c.value for c in top) > 1e-9:
        srcs = "; ".join(f"{c.source}: {c.detail}" for c in top)
        m.bad("contradictory", feature, f"different values on {latest.isoformat()} ({srcs}): none used", feature)
        return None
    best = top[0]
    if len(cands) > 1:
        best = _Cand(best.value, best.when, best.source, best.detail + f" (most recent of {len(cands)})",
                     best.reference, best.code)
    return best


def map_prefetch(prefetch: dict[str, Any], patient_id: str, reg: Registry, schema: FeatureSchema,
                 baselines: list[str], today: date) -> MapResult:
    """Map a CDS Hooks prefetch to model inputs for ``patient_id`` as of ``today``."""
    m = _Mapper(reg, today)
    got: Collected = collect(prefetch, patient_id, lambda rtype, raw: m.screen(rtype, raw, patient_id))
    m.findings[:0] = got.findings  # the record-level findings first, then the screened ones (already in)
    for obs in got.resources["Observation"]:
        m.observation(obs)
    for qr in got.resources["QuestionnaireResponse"]:
        m.questionnaire(qr)
    age_months = patient_inputs(m, got.patient, today)
    conditions_and_medications(m, got.resources["Condition"], got.resources["MedicationStatement"], age_months)
    for rtype, codes in m.unknown.items():
        uniq = list(dict.fromkeys(codes))
        shown = "; ".join(uniq[:8]) + (f"; and {len(uniq) - 8} more" if len(uniq) > 8 else "")
        m.bad("unknown", rtype, f"{len(codes)} with codes this service does not read ({shown}): not used")

    chosen: dict[str, _Cand] = {}
    for feature, cands in m.cands.items():
        best = _resolve(m, feature, cands)
        if best is not None:
            chosen[feature] = best
    _derive_bmi(m, chosen)
    out = _validated(m, chosen, schema, baselines, got.provided_keys)
    _plausibility(m, {f: c for f, c in chosen.items() if f in out.inputs})
    out.foreign, out.fetch_failed = list(got.foreign), dict(got.fetch_failed)
    out.findings = condensed(out.findings)
    out.warnings, out.deceased, out.incomplete = list(m.warnings), m.deceased, dict(got.incomplete)
    return out


def _derive_bmi(m: _Mapper, chosen: dict[str, _Cand]) -> None:
    """BMI from the latest usable weight and height (dated by the weight), said with both dates. The
    more recent of a recorded BMI and the derived one is used; on the same day they must agree within
    :data:`BMI_TOLERANCE` or neither is used."""
    h = _resolve(m, "height_m", m.derived["height_m"]) if m.derived.get("height_m") else None
    w = _resolve(m, "weight_kg", m.derived["weight_kg"]) if m.derived.get("weight_kg") else None
    if h is None or w is None:
        return
    bmi = w.value / h.value ** 2
    detail = (f"computed as weight {w.detail} ({w.source}, {_day(w.when)}) / height {h.detail} ({h.source}, "
              f"{_day(h.when)}) squared = {_fmt(bmi)} kg/m2")
    derived = _Cand(bmi, w.when, "computed from weight and height", detail, f"{w.reference}, {h.reference}",
                    f"{w.code}, {h.code}")
    direct = chosen.get("bmi")
    if direct is None:
        if "bmi" not in {f.feature for f in m.findings if f.kind == "contradictory"}:
            chosen["bmi"] = derived
    elif direct.when == w.when and abs(direct.value - bmi) > BMI_TOLERANCE:
        m.bad("contradictory", "bmi", f"recorded BMI {direct.detail} ({direct.source}) differs from the BMI "
                                      f"{detail} on the same day: none used", "bmi")
        del chosen["bmi"]
    elif w.when is not None and direct.when is not None and w.when > direct.when:
        derived.detail += f" (more recent than the recorded BMI {direct.detail} of {_day(direct.when)}, not used)"
        chosen["bmi"] = derived


def _day(when: date | None) -> str:
    return when.isoformat() if when else "undated"


def _plausibility(m: _Mapper, chosen: dict[str, _Cand]) -> None:
    """A chosen value outside its entry's plausible range (e.g. a BMI of 55 from a recorded BMI or from
    weight and height) is used and warned about once; the range of the entry that reads the feature."""
    for e in m.reg.observations:
        c = chosen.get(e.feature) if e.feature else None
        if c is None or e.plausible is None or e.plausible[0] <= c.value <= e.plausible[1]:
            continue
        if any(w.kind == "implausible" and w.feature == e.feature for w in m.warnings):
            continue
        m.warn("implausible", c.source, f"{e.label} {_fmt(c.value)} is outside the plausible {_fmt(e.plausible[0])}-"
                                        f"{_fmt(e.plausible[1])}: used; check the record", e.feature)


def _validated(m: _Mapper, chosen: dict[str, _Cand], schema: FeatureSchema, baselines: list[str],
               provided: list[str]) -> MapResult:
    inputs: dict[str, float] = {}
    used: list[Used] = []
    for feature, c in chosen.items():
        if feature in baselines:
            value: float | int = round(c.value, 4)
            problem = None if BASELINE_RANGE[0] <= value <= BASELINE_RANGE[1] else "outside 0-100"
        elif feature in schema:
            value = int(c.value) if schema[feature].type == "binary" else round(c.value, 4)
            problem = schema[feature].check_value(value)
        else:
            m.bad("ignored", c.source, f"the model has no input '{feature}': not used", feature)
            continue
        if problem:
            m.bad("out_of_range", c.source, f"{feature}: {problem} ({c.detail}): not used", feature)
            continue
        inputs[feature] = value
        used.append(Used(feature, value, c.source, c.detail, c.when, c.reference, c.code))
    names = list(baselines) + list(schema.names)
    return MapResult(inputs, sorted(used, key=lambda u: names.index(u.feature)), m.findings,
                     [n for n in names if n not in inputs], provided)
