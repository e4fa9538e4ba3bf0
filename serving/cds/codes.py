"""The code registry: which FHIR codes the CDS Hooks service reads and how each becomes a model input.

The registry is ``codes.yaml`` next to this module (package data); a site file (``LBP_CDS_CODES``)
of the same shape replaces entries by ``id`` or adds new ones, e.g. a local code for Roland-Morris.
Everything is checked at load time, so a typo fails the service's start with the file and entry
named, not a patient's card later.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from predict.errors import LbpError
from predict.yaml_file import load_yaml
from serving.cds.registry_entry import RegistryEntry
from serving.cds.questionnaire import QuestionnaireEntry, match, parse_entry

DEFAULT_PATH = Path(__file__).with_name("codes.yaml")
OBS_KINDS = ("score", "quantity", "coded")
DERIVED = ("height_m", "weight_kg")
CONDITION_ROLES = ("episode", "present")
SECTIONS = ("observations", "conditions", "questionnaires", "referrals", "body_sites")
SYSTEM_ALIASES = {
    # The HL7 OIDs of the code systems whose FHIR URIs the registry uses (FHIR R4 terminologies-systems:
    # "urn:oid:" forms of the same code system). Systems that started from V3/CDA data still send them.
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.8": "http://unitsofmeasure.org",
    "urn:oid:2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
    "urn:oid:2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
}


def canonical_system(system: str | None) -> str | None:
    """A code system's FHIR URI: its HL7 OID form (``urn:oid:2.16.840.1.113883.6.1``) read as the
    URI (``http://loinc.org``); any other system as given."""
    return SYSTEM_ALIASES.get(system, system) if system else system


def system_note(system: str | None) -> str:
    """What the card says when a code came under the OID form of its system ('' otherwise)."""
    uri = canonical_system(system)
    return "" if uri == system else f"code system sent as its OID {system} (= {uri})"


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str = ""
    source: str = ""
    max_age_days: int | None = None  # overrides the entry's limit for this code

    @property
    def key(self) -> tuple[str, str]:
        return (self.system, self.code)

    def short(self) -> str:
        """``LOINC 72514-3``: the code with a readable system name."""
        name = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED CT"}.get(self.system, self.system)
        return f"{name} {self.code}"

    def label(self) -> str:
        return self.short() + (f" ({self.display})" if self.display else "")


@dataclass(frozen=True)
class Answer:
    code: Code
    value: int | None  # None: a known answer that does not determine the input


@dataclass(frozen=True)
class ObservationEntry(RegistryEntry):
    """An Observation code: a ``score`` on ``scale`` (rescaled to 0-100), a ``quantity`` in ``units``
    (factor to the model's unit), or a ``coded`` answer; feeds ``feature`` or a ``derive`` value."""
    codes: tuple[Code, ...]
    kind: str
    feature: str | None = None
    derive: str | None = None
    scale: tuple[float, float] | None = None
    units: dict[str, float] | None = None  # unit -> factor to the target unit ("" = no unit)
    answers: tuple[Answer, ...] = ()
    plausible: tuple[float, float] | None = None  # outside: used, with a counted warning (check the record)
    max_age_days: int | None = None
    body_site: str | None = None  # a body_sites group: a bodySite outside it means another site
    possible: tuple[float, float] | None = None  # outside: impossible, an error, not used

    def max_age_for(self, system: str | None, code: str | None) -> int | None:
        """The staleness limit of this code: the code's own ``max_age_days``, else the entry's."""
        c = next((c for c in self.codes if c.key == (canonical_system(system), code)), None)
        return c.max_age_days if c is not None and c.max_age_days is not None else self.max_age_days


@dataclass(frozen=True)
class ConditionEntry(RegistryEntry):
    """A Condition code: ``episode`` (the current episode: its onset gives episode_months) or
    ``present`` (an active condition sets the binary ``feature``)."""
    role: str
    codes: tuple[Code, ...]
    feature: str | None = None


@dataclass(frozen=True)
class Registry:
    observations: tuple[ObservationEntry, ...]
    conditions: tuple[ConditionEntry, ...]
    questionnaires: tuple[QuestionnaireEntry, ...]
    referrals: tuple[Code, ...]
    body_sites: dict[str, tuple[Code, ...]] = field(default_factory=dict)

    @cached_property
    def _by_code(self) -> dict[tuple[str, str], ObservationEntry | ConditionEntry]:
        return {c.key: e for e in (*self.conditions, *self.observations) for c in e.codes}

    def observation_for(self, system: str | None, code: str | None) -> ObservationEntry | None:
        e = self._by_code.get((canonical_system(system), code))
        return e if isinstance(e, ObservationEntry) else None

    def condition_for(self, system: str | None, code: str | None) -> ConditionEntry | None:
        e = self._by_code.get((canonical_system(system), code))
        return e if isinstance(e, ConditionEntry) else None

    def questionnaire_for(self, url: str | None) -> tuple[QuestionnaireEntry | None, str]:
        """The entry for a questionnaire canonical (with or without ``|version``) and a note."""
        return match(self.questionnaires, url)

    def episode_codes(self) -> set[tuple[str, str]]:
        return {c.key for e in self.conditions if e.role == "episode" for c in e.codes}

    def features(self) -> set[str]:
        out = {e.feature for e in self.observations if e.feature}
        out |= {e.feature for e in self.conditions if e.feature}
        out |= {q.feature for q in self.questionnaires}
        return out


def _err(where: str, msg: str) -> LbpError:
    return LbpError(f"CDS code registry {where}: {msg}")


def _pair(v: Any, where: str, name: str) -> tuple[float, float] | None:
    if v is None:
        return None
    if (not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(x, (int, float)) for x in v)
            or not v[0] < v[1]):
        raise _err(where, f"{name} must be [low, high] with low < high")
    return (float(v[0]), float(v[1]))


def _code(d: Any, where: str) -> Code:
    if not isinstance(d, dict) or not isinstance(d.get("system"), str) or not isinstance(d.get("code"), str):
        raise _err(where, "each code needs a system and a code (strings)")
    if not str(d.get("source", "")).strip():
        raise _err(where, f"code {d['code']} needs a source (where its meaning was checked)")
    age = d.get("max_age_days")
    if age is not None and (not isinstance(age, int) or isinstance(age, bool) or age <= 0):
        raise _err(where, f"code {d['code']}: max_age_days must be a positive integer")
    return Code(d["system"], d["code"], str(d.get("display", "")), str(d["source"]), age)


def _codes(d: dict, where: str) -> tuple[Code, ...]:
    codes = d.get("codes")
    if not isinstance(codes, list) or not codes:
        raise _err(where, "codes must be a non-empty list")
    return tuple(_code(c, where) for c in codes)


def _observation(d: dict, where: str) -> ObservationEntry:
    kind = d.get("kind")
    if kind not in OBS_KINDS:
        raise _err(where, f"kind must be one of {', '.join(OBS_KINDS)}")
    feature, derive = d.get("feature"), d.get("derive")
    if bool(feature) == bool(derive):
        raise _err(where, "give exactly one of feature or derive")
    if derive and derive not in DERIVED:
        raise _err(where, f"derive must be one of {', '.join(DERIVED)}")
    units = d.get("units")
    if isinstance(units, list):
        units = {str(u): 1.0 for u in units}
    if units is not None and (not isinstance(units, dict) or not all(isinstance(f, (int, float)) and f > 0
                                                                      for f in units.values())):
        raise _err(where, "units must be a list of unit codes or a map unit -> positive factor")
    scale = _pair(d.get("scale"), where, "scale")
    if kind == "score" and scale is None:
        raise _err(where, "a score needs its scale [low, high]")
    if kind in ("score", "quantity") and not units:
        raise _err(where, "a score or quantity needs its accepted units")
    answers = ()
    if kind == "coded":
        raw = d.get("answers")
        if not isinstance(raw, list) or not raw:
            raise _err(where, "a coded observation needs answers")
        answers = tuple(Answer(_code(a, where), a.get("value")) for a in raw)
        if any(a.value not in (0, 1, None) for a in answers):
            raise _err(where, "answer values must be 0, 1 or null")
    age = d.get("max_age_days")
    if age is not None and (not isinstance(age, int) or age <= 0):
        raise _err(where, "max_age_days must be a positive integer")
    site = d.get("body_site")
    if site is not None and not isinstance(site, str):
        raise _err(where, "body_site names a group of the body_sites section")
    possible, plausible = _pair(d.get("possible"), where, "possible"), _pair(d.get("plausible"), where, "plausible")
    if (possible or plausible) and kind != "quantity":
        raise _err(where, "possible and plausible ranges are for a quantity (a score has its scale)")
    if possible and plausible and not possible[0] <= plausible[0] < plausible[1] <= possible[1]:
        raise _err(where, "the plausible range must lie within the possible range")
    return ObservationEntry(d["id"], str(d.get("label", d["id"])), _codes(d, where), kind, feature, derive, scale,
                            {str(k): float(v) for k, v in units.items()} if units else None, answers,
                            plausible, age, site, possible)


def _condition(d: dict, where: str) -> ConditionEntry:
    role = d.get("role")
    if role not in CONDITION_ROLES:
        raise _err(where, f"role must be one of {', '.join(CONDITION_ROLES)}")
    if role == "present" and not d.get("feature"):
        raise _err(where, "a 'present' condition needs the binary feature it sets")
    return ConditionEntry(d["id"], str(d.get("label", d["id"])), role, _codes(d, where), d.get("feature"))


def _read(path: Path) -> dict:
    data = load_yaml(path, "the CDS code registry")
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise LbpError(f"the CDS code registry {path} must be a mapping with sections {', '.join(SECTIONS)}")
    return data


def _merge(base: list, extra: list, where: str) -> list:
    out = {d["id"]: d for d in base}
    for d in extra:
        if not isinstance(d, dict) or not isinstance(d.get("id"), str):
            raise _err(where, "every entry needs an id")
        out[d["id"]] = d
    return list(out.values())


def load_registry(extra: str | Path | None = None) -> Registry:
    """The shipped registry, with the entries of ``extra`` (a site YAML file) replacing or adding by id."""
    data = _read(DEFAULT_PATH)
    if extra is not None:
        site = _read(Path(extra))
        for sec in ("observations", "conditions", "questionnaires"):
            data[sec] = _merge(data.get(sec) or [], site.get(sec) or [], f"{extra} [{sec}]")
        if "referrals" in site:
            data["referrals"] = site["referrals"]
        if site.get("body_sites"):
            data["body_sites"] = {**(data.get("body_sites") or {}), **site["body_sites"]}
    obs, cond, qs = [], [], []
    for sec, build, out in (("observations", _observation, obs), ("conditions", _condition, cond),
                            ("questionnaires", parse_entry, qs)):
        for i, d in enumerate(data.get(sec) or []):
            if not isinstance(d, dict) or not isinstance(d.get("id"), str):
                raise _err(f"[{sec}][{i}]", "every entry needs an id")
            out.append(build(d, f"[{sec}] {d['id']}"))
    sites_raw = data.get("body_sites") or {}
    if not isinstance(sites_raw, dict):
        raise _err("[body_sites]", "must map a group name to a list of codes")
    sites = {str(k): _codes({"codes": v}, f"[body_sites] {k}") for k, v in sites_raw.items()}
    for e in obs:
        if e.body_site is not None and e.body_site not in sites:
            raise _err(f"[observations] {e.id}", f"body_site {e.body_site} is not a group of the body_sites section")
    reg = Registry(tuple(obs), tuple(cond), tuple(qs),
                   tuple(_code(c, "[referrals]") for c in data.get("referrals") or []), sites)
    canon: dict[str, str] = {}
    for q in reg.questionnaires:
        for url in q.urls:
            if url in canon and canon[url] != q.id:
                raise _err(f"[questionnaires] {q.id}", f"canonical {url} is also listed under {canon[url]}")
            canon[url] = q.id
    seen: dict[tuple[str, str], str] = {}
    for e in (*reg.observations, *reg.conditions):
        for c in e.codes:
            if c.key in seen and seen[c.key] != e.id:
                raise _err(f"[{e.id}]", f"code {c.system}|{c.code} is also listed under {seen[c.key]}")
            seen[c.key] = e.id
    return reg
