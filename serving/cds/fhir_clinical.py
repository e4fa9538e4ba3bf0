"""Patient, Condition and MedicationStatement → age, sex, episode duration, leg pain, LBP medication.

Only positive evidence sets a value: an active sciatica Condition sets ``leg_pain = 1`` and an
active MedicationStatement for low back pain sets ``lbp_medication = 1``; their absence sets
nothing, because a problem or medication list is no proof of absence.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from serving.cds.fhir_read import Candidate as _Cand, fhir_date, ref

CURRENT = ("active", "recurrence", "relapse")
BIRTHSEX_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
DAYS_PER_MONTH = 30.4375
AGE_UNITS_MONTHS = {"a": 12.0, "mo": 1.0, "wk": 7 / DAYS_PER_MONTH, "d": 1 / DAYS_PER_MONTH}
EPISODE_TOLERANCE_MONTHS = 1.0
_CONDITION_REF = re.compile(r"(?:^|/)Condition/([A-Za-z0-9\-.]{1,64})$")


def _first_code(concept: Any) -> str | None:
    for c in (getattr(concept, "coding", None) or []) if concept is not None else []:
        if c.code:
            return c.code
    return None


def _age_years(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _age_span(born: date, precision: str, today: date) -> tuple[int, int]:
    """The youngest and oldest completed ages a birthDate of this precision allows."""
    if precision == "year":
        first, last = date(born.year, 1, 1), date(born.year, 12, 31)
    elif precision == "month":
        first = date(born.year, born.month, 1)
        last = (date(born.year + born.month // 12, born.month % 12 + 1, 1) - timedelta(days=1))
    else:
        first = last = born
    return _age_years(min(last, today), today), _age_years(first, today)


def _deceased(m: Any, patient: Any, where: str) -> None:
    if patient.deceasedBoolean is True:
        m.deceased = "the record says the patient has died (deceasedBoolean)"
    elif patient.deceasedDateTime is not None:
        m.deceased = f"the record says the patient died on {fhir_date(patient.deceasedDateTime)[0] or '(undated)'}"
    if m.deceased:
        m.bad("deceased", where, m.deceased + ": no prediction")


def patient_inputs(m: Any, patient: Any, today: date) -> float | None:
    """Age (completed years at ``today``) and sex from the Patient; returns the age in months. A
    birthDate given to the month or year gives the age at the middle of that month or year, with the
    span of ages it allows said (a warning of kind ``approximate``); a deceased patient is marked
    (``m.deceased``: the service gives no prediction)."""
    if patient is None:
        m.bad("not_provided", "Patient", "no Patient for context.patientId: age and sex unknown")
        return None
    where = ref(patient)
    _deceased(m, patient, where)
    age_months = None
    born, precision = fhir_date(patient.birthDate)
    if born is None:
        m.bad("not_provided", where, "has no birthDate: age unknown", "age")
    elif born > today:
        m.bad("invalid", where, "birthDate is in the future: age not used", "age")
    else:
        years = _age_years(born, today)
        age_months = (today - born).days / DAYS_PER_MONTH
        note = ""
        if precision != "day":
            lo, hi = _age_span(born, precision, today)
            note = (f" (birthDate gives the {precision} only: age {lo}-{hi}; {years} from the middle of the "
                    f"{precision})" if lo != hi else f" (birthDate gives the {precision} only; the age is {years} either way)")
            if lo != hi:
                m.warn("approximate", where, f"birthDate gives the {precision} only: age {lo} to {hi} years, "
                                             f"{years} used", "age")
        m.add("age", _Cand(float(years), today, where, f"birthDate → {years} years at {today.isoformat()}{note}"))
    _sex(m, patient, where, today)
    return age_months


def _birth_sex(patient: Any) -> str | None:
    """The US Core birth sex extension's code (F, M, UNK, ...), if the Patient has one."""
    for ext in patient.extension or []:
        if ext.url == BIRTHSEX_URL:
            return ext.valueCode
    return None


def _sex(m: Any, patient: Any, where: str, today: date) -> None:
    """The binary sex input from ``gender`` (female/male); when gender does not say (other, unknown,
    absent), from the US Core birth sex extension (F/M), said so; a gender and a birth sex that
    disagree leave it missing (contradictory)."""
    gender, birth = patient.gender, _birth_sex(patient)
    from_birth = {"F": "female", "M": "male"}.get(birth or "")
    if gender in ("female", "male"):
        if from_birth and from_birth != gender:
            m.bad("contradictory", where, f"gender {gender} and US Core birth sex {birth} differ: the model's binary "
                                          "sex input is not usable, left missing", "female")
            return
        m.add("female", _Cand(1.0 if gender == "female" else 0.0, today, where, f"gender {gender}"))
    elif from_birth:
        m.add("female", _Cand(1.0 if from_birth == "female" else 0.0, today, where,
                              f"US Core birth sex {birth} (gender is {gender or 'not given'})"))
    elif gender is None:
        m.bad("not_provided", where, "has no gender: sex unknown", "female")
    else:
        m.bad("unknown", where, f"gender '{gender}' does not map to the model's binary sex input (female/male): "
                                "not usable, left missing", "female")


def _onset_months(m: Any, cond: Any, today: date, age_months: float | None) -> tuple[float, str] | None:
    where = ref(cond)
    if cond.onsetDateTime is not None or (cond.onsetPeriod is not None and cond.onsetPeriod.start is not None):
        raw = cond.onsetDateTime if cond.onsetDateTime is not None else cond.onsetPeriod.start
        onset, precision = fhir_date(raw)
        if onset is None or onset > today:
            m.bad("invalid", where, "onset date is invalid or in the future: episode duration unknown",
                  "episode_months")
            return None
        months = (today - onset).days / DAYS_PER_MONTH
        note = "" if precision == "day" else f", onset given to the {precision}"
        return months, f"onset {onset.isoformat() if precision == 'day' else str(raw)} → {months:.1f} months{note}"
    if cond.onsetAge is not None and cond.onsetAge.value is not None:
        unit = cond.onsetAge.code or ""
        if unit not in AGE_UNITS_MONTHS:
            m.bad("wrong_unit", where, f"onsetAge unit '{unit}' is not a UCUM age unit (a, mo, wk, d): not used",
                  "episode_months")
            return None
        if age_months is None:
            m.bad("not_provided", where, "onsetAge needs the patient's birthDate: episode duration unknown",
                  "episode_months")
            return None
        months = age_months - float(cond.onsetAge.value) * AGE_UNITS_MONTHS[unit]
        if months < 0:
            m.bad("contradictory", where, "onsetAge is above the patient's age: not used", "episode_months")
            return None
        return months, f"onset at age {cond.onsetAge.value} {unit} → {months:.1f} months"
    m.bad("not_provided", where, "onset is not given as a date or an age: episode duration unknown",
          "episode_months")
    return None


def _current(m: Any, cond: Any, label: str) -> bool:
    where = ref(cond)
    if _first_code(cond.verificationStatus) in ("entered-in-error", "refuted"):
        m.bad("ignored", where, f"{label}: verificationStatus {_first_code(cond.verificationStatus)}: not used")
        return False
    status = _first_code(cond.clinicalStatus)
    if status is None:
        m.bad("unknown", where, f"{label} has no clinicalStatus, so it may not be current: not used")
        return False
    if status not in CURRENT or cond.abatementDateTime is not None or cond.abatementString is not None:
        m.bad("ignored", where, f"{label} is not current (clinicalStatus {status}): not used")
        return False
    return True


def conditions_and_medications(m: Any, conditions: list, medications: list, age_months: float | None) -> None:
    """Episode duration and leg pain from Conditions; LBP medication use from MedicationStatements."""
    today = m.today
    lbp_ids: set[str] = set()
    episodes: list[tuple[float, str, str]] = []
    for cond in conditions:
        entry = next((e for c in (cond.code.coding or [] if cond.code else [])
                      if (e := m.reg.condition_for(c.system, c.code))), None)
        if entry is None:
            m.unknown.setdefault("Condition", []).append(
                ", ".join(f"{c.system}|{c.code}" for c in (cond.code.coding or [])) if cond.code else "(no code)")
            continue
        if entry.role == "episode" and cond.id:
            lbp_ids.add(cond.id)
        if not _current(m, cond, entry.label):
            continue
        if entry.role == "present":
            m.add(entry.feature, _Cand(1.0, today, ref(cond), f"active {entry.label} Condition"))
            continue
        got = _onset_months(m, cond, today, age_months)
        if got is not None:
            episodes.append((got[0], ref(cond), got[1]))
    if episodes:
        spread = max(e[0] for e in episodes) - min(e[0] for e in episodes)
        if spread > EPISODE_TOLERANCE_MONTHS:
            srcs = "; ".join(f"{w}: {d}" for _, w, d in episodes)
            m.bad("contradictory", "episode_months", f"current low back pain Conditions disagree on the onset "
                                                     f"({srcs}): episode duration not used", "episode_months")
        else:
            months, where, detail = max(episodes)
            m.add("episode_months", _Cand(round(months, 1), today, where, detail))
    _medications(m, medications, lbp_ids)


def _medications(m: Any, medications: list, lbp_ids: set[str]) -> None:
    lbp_codes = m.reg.episode_codes()
    unrelated = 0
    for ms in medications:
        where = ref(ms)
        by_code = any((c.system, c.code) in lbp_codes for rc in ms.reasonCode or [] for c in rc.coding or [])
        by_ref = any((mm := _CONDITION_REF.search(r.reference or "")) and mm.group(1) in lbp_ids
                     for r in ms.reasonReference or [])
        if not (by_code or by_ref):
            unrelated += 1
            continue
        if ms.status != "active":
            m.bad("ignored", where, f"medication for low back pain with status '{ms.status}' does not show current "
                                    "use: not used", "lbp_medication")
            continue
        drug = ms.medicationCodeableConcept
        name = (drug.text or next((c.display for c in drug.coding or [] if c.display), None)) if drug else None
        m.add("lbp_medication", _Cand(1.0, m.today, where,
                                      f"active medication for low back pain{f' ({name})' if name else ''}"))
    if unrelated:
        m.bad("ignored", "MedicationStatement", f"{unrelated} not linked to low back pain by reasonCode or "
                                                "reasonReference: not used (LBP medication is never inferred)",
              "lbp_medication")
