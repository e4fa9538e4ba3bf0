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
from serving.cds.codes import Code, ObservationEntry, Registry
from serving.cds.fhir_clinical import conditions_and_medications, patient_inputs
from serving.cds.fhir_read import Candidate as _Cand, Collected, Finding, collect, fhir_date, ref
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


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"


def _codings(concept: Any) -> list[Any]:
    return list(getattr(concept, "coding", None) or []) if concept is not None else []


def _code_list(concept: Any) -> str:
    cs = [Code(c.system or "", c.code or "").label() for c in _codings(concept)]
    return ", ".join(cs) if cs else "(no coding)"


class _Mapper:
    def __init__(self, reg: Registry, today: date):
        self.reg, self.today = reg, today
        self.cands: dict[str, list[_Cand]] = {}
        self.derived: dict[str, list[_Cand]] = {}
        self.findings: list[Finding] = []
        self.unknown: dict[str, list[str]] = {}

    def add(self, feature: str, cand: _Cand, derived: bool = False) -> None:
        (self.derived if derived else self.cands).setdefault(feature, []).append(cand)

    def bad(self, kind: str, where: str, msg: str, feature: str | None = None) -> None:
        self.findings.append(Finding(kind, where, msg, feature))

    def fresh(self, when: date | None, max_age: int | None, where: str, feature: str | None) -> bool:
        if when is None:
            self.bad("invalid", where, "has no effective date, so it cannot be dated as a baseline: not used", feature)
            return False
        if when > self.today:
            self.bad("invalid", where, f"is dated in the future ({when.isoformat()}): not used", feature)
            return False
        if max_age is not None and (self.today - when).days > max_age:
            self.bad("stale", where, f"is older than {max_age} days ({when.isoformat()}): not used", feature)
            return False
        return True

    # ------------------------------------------------------------------ Observation
    def observation(self, obs: Any) -> None:
        where = ref(obs)
        match = next(((c, e) for c in _codings(obs.code) if (e := self.reg.observation_for(c.system, c.code))), None)
        entry = match[1] if match else None
        if entry is None:
            self.unknown.setdefault("Observation", []).append(_code_list(obs.code))
            return
        target = entry.feature or entry.derive
        if obs.status not in OK_OBS_STATUS:
            self.bad("ignored", where, f"has status '{obs.status}' (not final): not used", target)
            return
        if obs.dataAbsentReason is not None:
            self.bad("ignored", where, "carries a dataAbsentReason instead of a value: not used", target)
            return
        if entry.body_site and not self._site_ok(obs, entry, where, target):
            return
        when = observation_when(obs, self.today)
        if not when.current and not self.fresh(when.day, entry.max_age_for(match[0].system, match[0].code),
                                               where, target):
            return
        got = {"score": self._score, "quantity": self._quantity, "coded": self._coded}[entry.kind](obs, entry, where)
        if got is not None:
            value, detail = got
            code = Code(match[0].system or "", match[0].code or "")
            if when.current or not when.basis.startswith("effective"):
                detail += f"; {when.describe()}"
            self.add(target, _Cand(value, when.day, f"{where}, {code.short()}", detail, where,
                                   f"{code.system}|{code.code}"), bool(entry.derive))

    def _site_ok(self, obs: Any, entry: ObservationEntry, where: str, target: str | None) -> bool:
        if obs.bodySite is None:
            return True
        allowed = {c.key for c in self.reg.body_sites.get(entry.body_site, ())}
        if any((c.system, c.code) in allowed for c in _codings(obs.bodySite)):
            return True
        site = _code_list(obs.bodySite) if _codings(obs.bodySite) else (obs.bodySite.text or "(no coding)")
        self.bad("other_site", where, f"{entry.label} at body site {site}, not a {entry.body_site.replace('_', ' ')} "
                                      "site: not used", target)
        return False

    def _unit_factor(self, q: Any, entry: ObservationEntry, where: str) -> float | None:
        if q.system and q.system != UCUM and q.code:
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

    def _number(self, obs: Any, entry: ObservationEntry, where: str) -> tuple[float, float] | None:
        if obs.valueQuantity is not None and obs.valueQuantity.value is not None:
            factor = self._unit_factor(obs.valueQuantity, entry, where)
            return None if factor is None else (float(obs.valueQuantity.value), factor)
        if obs.valueInteger is not None and entry.kind == "score":
            return float(obs.valueInteger), 1.0
        self.bad("invalid", where, f"has no numeric value for {entry.label}: not used", entry.feature or entry.derive)
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
        if obs.valueQuantity is None or obs.valueQuantity.value is None:
            self.bad("invalid", where, f"{entry.label} needs a valueQuantity: not used", entry.feature or entry.derive)
            return None
        factor = self._unit_factor(obs.valueQuantity, entry, where)
        if factor is None:
            return None
        raw = float(obs.valueQuantity.value)
        value = raw * factor
        unit = obs.valueQuantity.code if obs.valueQuantity.code is not None else obs.valueQuantity.unit
        if entry.plausible and not entry.plausible[0] <= value <= entry.plausible[1]:
            lo, hi = entry.plausible
            self.bad("out_of_range", where, f"{entry.label} {_fmt(raw)} {unit} is outside {_fmt(lo)}-{_fmt(hi)} "
                                            "(wrong unit?): not used", entry.derive)
            return None
        detail = f"{_fmt(raw)} {unit}" + ("" if factor == 1.0 else f" = {_fmt(value)} {entry.derive.split('_')[-1]}"
                                          if entry.derive else f" × {_fmt(factor)}")
        return value, detail

    def _coded(self, obs: Any, entry: ObservationEntry, where: str) -> tuple[float, str] | None:
        if obs.valueBoolean is not None:
            return float(obs.valueBoolean), f"{entry.label}: {'yes' if obs.valueBoolean else 'no'}"
        for c in _codings(obs.valueCodeableConcept):
            ans = next((a for a in entry.answers if a.code.key == (c.system, c.code)), None)
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
    got: Collected = collect(prefetch, patient_id)
    m = _Mapper(reg, today)
    m.findings.extend(got.findings)
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
    out.foreign, out.fetch_failed = list(got.foreign), dict(got.fetch_failed)
    return out


def _derive_bmi(m: _Mapper, chosen: dict[str, _Cand]) -> None:
    h = _resolve(m, "height_m", m.derived["height_m"]) if m.derived.get("height_m") else None
    w = _resolve(m, "weight_kg", m.derived["weight_kg"]) if m.derived.get("weight_kg") else None
    if h is None or w is None:
        return
    bmi = w.value / h.value ** 2
    detail = f"weight {w.detail} ({w.source}) / height {h.detail} ({h.source}) squared = {_fmt(bmi)} kg/m2"
    direct = chosen.get("bmi")
    if direct is None and "bmi" not in {f.feature for f in m.findings if f.kind == "contradictory"}:
        chosen["bmi"] = _Cand(bmi, w.when, "computed from weight and height", detail,
                              f"{w.reference}, {h.reference}", f"{w.code}, {h.code}")
    elif direct is not None and direct.when == w.when and abs(direct.value - bmi) > BMI_TOLERANCE:
        m.bad("contradictory", "bmi", f"recorded BMI {direct.detail} ({direct.source}) differs from {detail} on the "
                                      "same day: none used", "bmi")
        del chosen["bmi"]


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
