"""Realistic FHIR R4 records through the mapping (serving/cds/fhir_map.py): time (ongoing status
periods, effective[x] before issued, per-code staleness), questionnaires scored from their items
(ODI, RMDQ, a summed instrument; versioned canonicals), body sites, identity and fetch failures.

Resources follow the FHIR R4 specification and public examples: the ODH EmploymentStatus sample
(LOINC 74165-2, ``effectivePeriod`` with a start only), QuestionnaireResponse items with
``valueCoding`` carrying the ``ordinalValue`` extension, ``valueBoolean`` checklist items, and
``bodySite`` as a SNOMED CT CodeableConcept."""
from __future__ import annotations

import pytest

from predict.errors import LbpError
from serving.cds.codes import load_registry
from tests.test_cds_fhir_map import LOINC, PID, SNOMED, TODAY, bundle, complete_prefetch, day, observation, run

V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
ODI_URL = "https://forms.example.org/Questionnaire/odi"
RMDQ_URL = "https://forms.example.org/Questionnaire/rmdq"
FABQ_URL = "https://forms.example.org/Questionnaire/fabq-pa"
ODI_LINKS = [f"odi-{i}" for i in range(1, 11)]
RMDQ_LINKS = [f"rmdq-{i}" for i in range(1, 25)]


def kinds(r, feature):
    return {f.kind for f in r.findings if f.feature == feature}


def employment(oid="emp-odh", value="Employed", **timing):
    """The ODH EmploymentStatus shape: category social-history, LOINC 74165-2, a period."""
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "meta": {"profile": ["http://hl7.org/fhir/us/odh/StructureDefinition/odh-EmploymentStatus"]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "social-history"}]}],
            "code": {"coding": [{"system": LOINC, "code": "74165-2",
                                 "display": "History of employment status NIOSH"}]},
            "subject": {"reference": f"Patient/{PID}"},
            "valueCodeableConcept": {"coding": [{"system": V3, "code": value}]}, **timing}


def with_obs(*extra, drop=()):
    pre = complete_prefetch()
    pre["observations"]["entry"] = [e for e in pre["observations"]["entry"] if e["resource"]["id"] not in drop]
    pre["observations"]["entry"] += [{"resource": x} for x in extra]
    return pre


# ----------------------------------------------------------------------------- time
def test_ongoing_employment_period_is_current_however_old_its_start():
    r = run(with_obs(employment(effectivePeriod={"start": "2016-04-01"}), drop=("emp-1",)))
    assert r.inputs["employed"] == 1
    used = next(u for u in r.used if u.feature == "employed")
    assert "current" in used.detail and "ongoing" in used.detail and used.when == TODAY


def test_ended_period_is_historical_and_stale_after_the_limit_and_future_end_is_current():
    r = run(with_obs(employment(effectivePeriod={"start": "2015-01-01", "end": day(800)}), drop=("emp-1",)))
    assert "employed" not in r.inputs and kinds(r, "employed") == {"stale"}
    r = run(with_obs(employment(value="Unemployed", effectivePeriod={"start": day(900), "end": day(-30)}),
                     drop=("emp-1",)))
    assert r.inputs["employed"] == 0


def test_effective_is_used_before_issued_and_issued_only_when_there_is_no_effective():
    old = observation("pain-old", "72514-3", days_ago=400, valueInteger=7)
    old["issued"] = day(1) + "T10:00:00Z"  # made available yesterday, observed 400 days ago
    r = run(with_obs(old, drop=("pain-1",)))
    assert "baseline_pain" not in r.inputs and kinds(r, "baseline_pain") == {"stale"}
    only_issued = observation("pain-iss", "72514-3", valueInteger=7)
    del only_issued["effectiveDateTime"]
    only_issued["issued"] = day(2) + "T10:00:00Z"
    r = run(with_obs(only_issued, drop=("pain-1",)))
    assert r.inputs["baseline_pain"] == 70.0
    assert "issued" in next(u.detail for u in r.used if u.feature == "baseline_pain")


def test_staleness_limit_is_configurable_per_code(tmp_path):
    site = tmp_path / "codes.yaml"
    site.write_text("""
observations:
  - id: pain_nrs_0_10
    feature: baseline_pain
    label: Pain NRS (site limit 30 days)
    codes:
      - {system: "http://loinc.org", code: "72514-3", source: "[V] loinc.org", max_age_days: 30}
    kind: score
    scale: [0, 10]
    units: ["", "{score}"]
    max_age_days: 90
    body_site: low_back
""")
    pre = with_obs(observation("pain-40", "72514-3", days_ago=40, valueInteger=5), drop=("pain-1",))
    assert run(pre).inputs["baseline_pain"] == 50.0  # within the entry's 90 days
    r = run(pre, registry=load_registry(site))
    assert "baseline_pain" not in r.inputs and kinds(r, "baseline_pain") == {"stale"}
    assert "40 days old (2025-01-29), older than the 30-day limit" in next(f.message for f in r.findings if f.kind == "stale")


# ----------------------------------------------------------------------------- questionnaires
def site_registry(tmp_path, odi_url=ODI_URL + "|2.1a", odi_extra=""):
    f = tmp_path / "codes.yaml"
    f.write_text(f"""
questionnaires:
  - id: odi_form
    feature: baseline_function
    label: Oswestry Disability Index 2.1a
    urls: ["{odi_url}"]
    instrument: odi
    item_link_ids: [{", ".join(ODI_LINKS)}]
    total_link_ids: [odi-total]
    scale: [0, 100]
    max_age_days: 90
{odi_extra}
  - id: rmdq_form
    feature: baseline_function
    label: Roland-Morris
    urls: ["{RMDQ_URL}"]
    instrument: rmdq
    item_link_ids: [{", ".join(RMDQ_LINKS)}]
  - id: fabq_pa_form
    feature: fear_avoidance
    label: FABQ physical activity
    urls: ["{FABQ_URL}"]
    instrument: sum
    item_range: [0, 6]
    item_link_ids: [fabq-2, fabq-3, fabq-4, fabq-5]
""")
    return load_registry(f)


def coding_answer(value: int):
    """An answer option as forms send it: a coding with the R4 ordinalValue extension."""
    return {"valueCoding": {"system": "https://forms.example.org/CodeSystem/odi-answers", "code": f"s{value}",
                            "extension": [{"url": ORDINAL, "valueDecimal": value}]}}


def response(qid, canonical, items, authored_days_ago=3, status="completed", subject=PID):
    return {"resourceType": "QuestionnaireResponse", "id": qid, "questionnaire": canonical, "status": status,
            "subject": {"reference": f"Patient/{subject}"}, "authored": day(authored_days_ago) + "T08:00:00Z",
            "item": items}


def odi_items(values, total=None):
    items = [{"linkId": link, "answer": [coding_answer(v)]} for link, v in zip(ODI_LINKS, values) if v is not None]
    if total is not None:
        items.append({"linkId": "odi-total", "answer": [{"valueDecimal": total}]})
    return items


def questionnaire_prefetch(*responses):
    pre = with_obs(drop=("odi-1", "fabq-1"))
    pre["questionnaires"] = bundle(*responses)
    return pre


def test_odi_scored_from_its_ten_sections_with_the_manual_rule_for_a_missed_section(tmp_path):
    reg = site_registry(tmp_path)
    full = response("odi-a", ODI_URL + "|2.1a", odi_items([2, 1, 3, 2, 1, 2, 1, 2, 1, 1]))
    r = run(questionnaire_prefetch(full), registry=reg)
    assert r.inputs["baseline_function"] == 32.0  # 16 / 50 x 100
    one_missed = response("odi-b", ODI_URL + "|2.1a", odi_items([2, 1, 3, 2, 1, 2, 1, 2, 2, None]))
    r = run(questionnaire_prefetch(one_missed), registry=reg)
    assert r.inputs["baseline_function"] == pytest.approx(16 / 45 * 100, abs=1e-3)  # the manual's 35.5%
    assert "5 × 9 answered" in next(u.detail for u in r.used if u.feature == "baseline_function")
    two_missed = response("odi-c", ODI_URL + "|2.1a", odi_items([2, 1, 3, 2, 1, 2, 1, 2, None, None]))
    r = run(questionnaire_prefetch(two_missed), registry=reg)
    assert "baseline_function" not in r.inputs
    assert "8 of 10 items answered" in next(f.message for f in r.findings if f.feature == "baseline_function")


def test_odi_min_answered_is_configurable_and_two_marks_count_the_highest(tmp_path):
    reg = site_registry(tmp_path, odi_extra="    min_answered: 8")
    items = odi_items([2, 1, 3, 2, 1, 2, 1, 2, None, None])
    items[0]["answer"].append(coding_answer(4))  # two statements marked in section 1: the highest counts
    r = run(questionnaire_prefetch(response("odi-d", ODI_URL + "|2.1a", items)), registry=reg)
    assert r.inputs["baseline_function"] == pytest.approx(16 / 40 * 100, abs=1e-3)


def test_questionnaire_canonical_matches_with_or_without_version(tmp_path):
    reg = site_registry(tmp_path)  # configured with |2.1a
    vals = [1] * 10
    r = run(questionnaire_prefetch(response("v1", ODI_URL, odi_items(vals))), registry=reg)
    assert r.inputs["baseline_function"] == 20.0
    assert "states no version" in next(u.detail for u in r.used if u.feature == "baseline_function")
    r = run(questionnaire_prefetch(response("v2", ODI_URL + "|2.0", odi_items(vals))), registry=reg)
    assert "baseline_function" not in r.inputs
    assert any("version 2.0" in f.message and "not configured" in f.message for f in r.findings)
    unversioned = site_registry(tmp_path, odi_url=ODI_URL)  # configured without version: every version
    r = run(questionnaire_prefetch(response("v3", ODI_URL + "|2.1a", odi_items(vals))), registry=unversioned)
    assert r.inputs["baseline_function"] == 20.0


def test_total_item_is_optional_and_a_disagreeing_total_is_reported(tmp_path):
    reg = site_registry(tmp_path)
    r = run(questionnaire_prefetch(response("t1", ODI_URL + "|2.1a", odi_items([1] * 10, total=20))), registry=reg)
    assert r.inputs["baseline_function"] == 20.0 and not kinds(r, "baseline_function")
    r = run(questionnaire_prefetch(response("t2", ODI_URL + "|2.1a", odi_items([1] * 10, total=10))), registry=reg)
    assert r.inputs["baseline_function"] == 20.0 and kinds(r, "baseline_function") == {"contradictory"}


def test_rmdq_counts_yes_answers_and_needs_all_24_by_default(tmp_path):
    reg = site_registry(tmp_path)
    yes = {3, 5, 7, 8, 11, 14, 15, 18, 22}
    items = [{"linkId": link, "answer": [{"valueBoolean": i + 1 in yes}]} for i, link in enumerate(RMDQ_LINKS)]
    r = run(questionnaire_prefetch(response("rm-1", RMDQ_URL, items)), registry=reg)
    assert r.inputs["baseline_function"] == pytest.approx(9 / 24 * 100, abs=1e-3)
    r = run(questionnaire_prefetch(response("rm-2", RMDQ_URL, items[:-1])), registry=reg)
    assert "baseline_function" not in r.inputs
    # yes/no as LOINC answer codes (LA33-6 yes, LA32-8 no)
    coded = [{"linkId": link, "answer": [{"valueCoding": {"system": LOINC, "code": "LA33-6" if i < 6 else "LA32-8"}}]}
             for i, link in enumerate(RMDQ_LINKS)]
    r = run(questionnaire_prefetch(response("rm-3", RMDQ_URL, coded)), registry=reg)
    assert r.inputs["baseline_function"] == 25.0


def test_summed_instrument_from_config_and_items_out_of_range(tmp_path):
    reg = site_registry(tmp_path)
    items = [{"linkId": f"fabq-{i}", "answer": [{"valueInteger": v}]} for i, v in zip((2, 3, 4, 5), (6, 4, 3, 5))]
    r = run(questionnaire_prefetch(response("fq-1", FABQ_URL, items)), registry=reg)
    assert r.inputs["fear_avoidance"] == pytest.approx(18 / 24 * 100, abs=1e-3)
    items[0]["answer"] = [{"valueInteger": 9}]
    r = run(questionnaire_prefetch(response("fq-2", FABQ_URL, items)), registry=reg)
    assert "fear_avoidance" not in r.inputs and "out_of_range" in kinds(r, "fear_avoidance")


def test_questionnaire_config_errors_name_the_entry(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("questionnaires:\n  - {id: q1, feature: baseline_function, urls: [x], instrument: odi,"
                 " item_link_ids: [a, b]}\n")
    with pytest.raises(LbpError, match=r"q1.*10 items"):
        load_registry(f)
    f.write_text("questionnaires:\n  - {id: q1, feature: baseline_function, urls: [u|1], total_link_ids: [t], scale: [0, 50]}\n"
                 "  - {id: q2, feature: baseline_function, urls: [u|1], total_link_ids: [t], scale: [0, 100]}\n")
    with pytest.raises(LbpError, match=r"q2.*also listed under q1"):
        load_registry(f)


# ----------------------------------------------------------------------------- body site
def site(code, display):
    return {"bodySite": {"coding": [{"system": SNOMED, "code": code, "display": display}]}}


def test_pain_with_a_leg_body_site_is_not_back_pain():
    leg = observation("pain-leg", "72514-3", days_ago=1, valueInteger=8, **site("30021000", "Lower leg structure"))
    r = run(with_obs(leg))
    assert r.inputs["baseline_pain"] == 60.0  # the low back score (no bodySite), not the leg's 8/10
    f = next(f for f in r.findings if f.where == "Observation/pain-leg")
    assert f.kind == "other_site" and "30021000" in f.message
    back = observation("pain-back", "72514-3", days_ago=1, valueInteger=8, **site("37822005", "Lower back structure"))
    assert run(with_obs(back)).inputs["baseline_pain"] == 80.0


# ----------------------------------------------------------------------------- identity and fetch failures
def test_a_questionnaire_of_another_patient_marks_the_record_as_mixed(tmp_path):
    reg = site_registry(tmp_path)
    r = run(questionnaire_prefetch(response("odi-x", ODI_URL, odi_items([1] * 10), subject="pat-other")), registry=reg)
    assert r.foreign == ["QuestionnaireResponse/odi-x"]


def test_operation_outcome_in_a_prefetch_slot_is_a_fetch_failure_not_no_data():
    pre = complete_prefetch()
    pre["observations"] = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "timeout", "diagnostics": "Observation search timed out"}]}
    r = run(pre)
    assert r.fetch_failed == {"observations": "error: Observation search timed out"}
    assert "baseline_pain" not in r.inputs
    assert any(f.kind == "fetch_failed" and f.where == "prefetch.observations" for f in r.findings)


def test_search_bundle_with_an_error_outcome_is_incomplete_and_a_warning_outcome_is_not():
    pre = complete_prefetch()
    pre["conditions"]["entry"].append({"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "too-costly", "diagnostics": "too many matches"}]}, "search": {"mode": "outcome"}})
    pre["medications"]["entry"].append({"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "informational", "diagnostics": "unknown parameter ignored"}]},
        "search": {"mode": "outcome"}})
    r = run(pre)
    assert set(r.fetch_failed) == {"conditions"} and r.inputs["lbp_medication"] == 1


def test_temporal_rule_ignores_timing_and_dates_undated_as_invalid():
    obs = observation("pain-t", "72514-3", valueInteger=3)
    del obs["effectiveDateTime"]
    obs["effectiveTiming"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
    r = run(with_obs(obs, drop=("pain-1",)))
    assert "baseline_pain" not in r.inputs and kinds(r, "baseline_pain") == {"invalid"}


def test_the_worked_site_configuration_of_the_docs_loads_and_reads_its_forms(tmp_path):
    """docs/cds-hooks.md's worked configuration is valid and does what the text says."""
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cds-hooks.md").read_text("utf-8")
    block = re.search(r"# /etc/lbp/cds-codes.yaml.*?\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "site.yaml").write_text(block)
    reg = load_registry(tmp_path / "site.yaml")
    assert reg.observation_for("https://ehr.example-hospital.org/codes", "RMDQ-TOTAL").id == "rmdq_0_24"
    assert reg.observation_for("urn:lbp-benefit:cds", "rmdq-0-24") is None  # replaced by id
    assert reg.observation_for(LOINC, "72514-3").max_age_days == 60
    assert {"education_beyond_high_school", "physically_active"} <= reg.features()
    entry, note = reg.questionnaire_for("https://forms.example-hospital.org/Questionnaire/odi|2.1a")
    assert entry.instrument == "odi" and note == ""


def test_a_synthea_shaped_record_as_a_fhir_server_returns_it():
    """Resources in the shapes Synthea writes (vital-signs and survey Observations with `issued`,
    `encounter`, UCUM units; 'Chronic low back pain (finding)'; 'Never smoked tobacco (finding)'),
    with the server-style `Patient/<id>` references a prefetch search returns."""
    def obs(oid, code, display, category, days_ago, **value):
        when = day(days_ago) + "T10:23:45+00:00"
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": category, "display": category}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
                "subject": {"reference": f"Patient/{PID}"}, "encounter": {"reference": "Encounter/enc-77"},
                "effectiveDateTime": when, "issued": when.replace("10:23:45", "10:23:45.123"), **value}

    def q(value, unit):
        return {"valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}

    pre = {"patient": {"resourceType": "Patient", "id": PID, "gender": "male", "birthDate": "1969-02-11",
                       "name": [{"use": "official", "family": "Kihn564", "given": ["Eli"], "prefix": ["Mr."]}]},
           "observations": bundle(
               obs("o-pain", "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "survey",
                   12, **q(4, "{score}")),
               obs("o-h", "8302-2", "Body Height", "vital-signs", 12, **q(181.2, "cm")),
               obs("o-w", "29463-7", "Body Weight", "vital-signs", 12, **q(88.4, "kg")),
               obs("o-bmi", "39156-5", "Body Mass Index", "vital-signs", 12, **q(26.92, "kg/m2")),
               obs("o-smk", "72166-2", "Tobacco smoking status", "survey", 12, valueCodeableConcept={
                   "coding": [{"system": SNOMED, "code": "266919005", "display": "Never smoked tobacco (finding)"}]}),
               obs("o-odi", "97909-6", "Oswestry disability index score ODI", "survey", 12, **q(34, "{score}"))),
           "conditions": bundle({
               "resourceType": "Condition", "id": "c-clbp",
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                              "code": "active"}]},
               "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                                  "code": "confirmed"}]},
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                         "code": "encounter-diagnosis"}]}],
               "code": {"coding": [{"system": SNOMED, "code": "278860009", "display": "Chronic low back pain (finding)"}]},
               "subject": {"reference": f"Patient/{PID}"}, "encounter": {"reference": "Encounter/enc-12"},
               "onsetDateTime": day(700) + "T08:00:00+00:00", "recordedDate": day(700) + "T08:00:00+00:00"})}
    r = run(pre)
    assert r.inputs["baseline_pain"] == 40.0 and r.inputs["baseline_function"] == 34.0
    assert r.inputs["bmi"] == 26.92 and r.inputs["current_smoker"] == 0 and r.inputs["female"] == 0
    assert r.inputs["episode_months"] == pytest.approx(700 / 30.4375, abs=0.05)
    assert not r.foreign and not r.fetch_failed
    assert not [f for f in r.findings if f.kind in ("invalid", "contradictory", "wrong_unit", "out_of_range")]
