"""FHIR R4 → model inputs (serving/cds/fhir_map.py): realistic R4 JSON bundles built here, parsed
with fhir.resources R4B; conversions, missing, unknown, wrong-unit and contradictory inputs."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from predict.errors import LbpError
from predict.schema import CovariateSpec, FeatureSchema
from serving.cds.codes import load_registry
from serving.cds.fhir_map import map_prefetch

TODAY = date(2025, 3, 10)
PID = "pat-7f3a"
LOINC, SNOMED, UCUM = "http://loinc.org", "http://snomed.info/sct", "http://unitsofmeasure.org"
LOCAL = "urn:lbp-benefit:cds"
BASELINES = ["baseline_pain", "baseline_function"]
SCHEMA = FeatureSchema((
    CovariateSpec("age", "continuous", "Age", "years", (18.0, 100.0)),
    CovariateSpec("female", "binary", "Female sex"),
    CovariateSpec("current_smoker", "binary", "Current smoker"),
    CovariateSpec("bmi", "continuous", "Body mass index", "kg/m2", (12.0, 70.0)),
    CovariateSpec("employed", "binary", "Employed"),
    CovariateSpec("fear_avoidance", "continuous", "Fear-avoidance beliefs", "0-100", (0.0, 100.0)),
    CovariateSpec("episode_months", "continuous", "Episode duration", "months", (0.0, 720.0)),
    CovariateSpec("leg_pain", "binary", "Any leg pain"),
    CovariateSpec("lbp_medication", "binary", "LBP medication use"),
))


# ----------------------------------------------------------------------------- R4 JSON builders
def day(days_ago: int, today: date = TODAY) -> str:
    return (today - timedelta(days=days_ago)).isoformat()


def quantity(value, unit):
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


def observation(oid, code, system=LOINC, days_ago=5, patient=PID, today=TODAY, status="final", **value):
    return {"resourceType": "Observation", "id": oid, "status": status,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey"}]}],
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": day(days_ago, today) + "T09:30:00+01:00", **value}


def coded(system, code):
    return {"valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}


def patient(pid=PID, gender="female", birth="1978-06-02"):
    p = {"resourceType": "Patient", "id": pid, "active": True, "name": [{"family": "Testperson", "given": ["Ann"]}]}
    if gender is not None:
        p["gender"] = gender
    if birth is not None:
        p["birthDate"] = birth
    return p


def condition(cid, code, onset_days_ago=400, status="active", today=TODAY, **extra):
    c = {"resourceType": "Condition", "id": cid,
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                        "code": status}]},
         "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                            "code": "confirmed"}]},
         "code": {"coding": [{"system": SNOMED, "code": code}]}, "subject": {"reference": f"Patient/{PID}"}, **extra}
    if onset_days_ago is not None:
        c["onsetDateTime"] = day(onset_days_ago, today)
    return c


def medication(mid, reason_ref="Condition/lbp-1", status="active"):
    return {"resourceType": "MedicationStatement", "id": mid, "status": status,
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": "197806", "display": "Ibuprofen 400 MG Oral Tablet"}]},
            "subject": {"reference": f"Patient/{PID}"}, "reasonReference": [{"reference": reason_ref}]}


def bundle(*resources):
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r.get('id')}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def complete_prefetch(today=TODAY, pid=PID) -> dict:
    """A complete patient: every input the registry can read, in the usual R4 shapes."""
    kw = {"today": today, "patient": pid}
    obs = bundle(
        observation("pain-1", "72514-3", **quantity(6, "{score}"), **kw),
        observation("odi-1", "97909-6", **quantity(38, "%"), **kw),
        observation("fabq-1", "fabq-pa-0-24", system=LOCAL, valueInteger=12, **kw),
        observation("bmi-1", "39156-5", **quantity(27.4, "kg/m2"), **kw),
        observation("smk-1", "72166-2", **coded(SNOMED, "8517006"), **kw),
        observation("emp-1", "74165-2", **coded("http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                                                "Employed"), **kw),
    )
    for r in obs["entry"]:
        r["resource"]["subject"]["reference"] = f"Patient/{pid}"
    conds = [condition("lbp-1", "279039007", today=today), condition("sci-1", "23056005", today=today)]
    meds = [medication("med-1")]
    for r in conds + meds:
        r["subject"]["reference"] = f"Patient/{pid}"
    return {"patient": patient(pid), "observations": obs, "conditions": bundle(*conds), "medications": bundle(*meds)}


def run(prefetch, registry=None, today=TODAY):
    return map_prefetch(prefetch, PID, registry or load_registry(), SCHEMA, BASELINES, today)


def kinds(result, feature=None):
    return {f.kind for f in result.findings if feature is None or f.feature == feature}


# ----------------------------------------------------------------------------- tests
def test_complete_patient_maps_every_input_with_reported_conversions():
    r = run(complete_prefetch())
    assert r.inputs == {"baseline_pain": 60.0, "baseline_function": 38.0, "age": 46.0, "female": 1,
                        "current_smoker": 0, "bmi": 27.4, "employed": 1, "fear_avoidance": 50.0,
                        "episode_months": pytest.approx(13.1), "leg_pain": 1, "lbp_medication": 1}
    assert r.missing == [] and not kinds(r) - {"ignored"}
    details = {u.feature: u for u in r.used}
    assert "rescaled from 0-10 to 60 on 0-100" in details["baseline_pain"].detail
    assert "Observation/pain-1" in details["baseline_pain"].source and "72514-3" in details["baseline_pain"].source
    assert "already on 0-100" in details["baseline_function"].detail
    assert "12 (Fear-Avoidance" in details["fear_avoidance"].detail and "to 50 on" in details["fear_avoidance"].detail


def test_sparse_patient_reports_what_is_missing_and_not_provided():
    pre = {"patient": patient(gender=None, birth=None),
           "observations": bundle(observation("pain-1", "72514-3", valueInteger=7),
                                  observation("rm-1", "rmdq-0-24", system=LOCAL, valueInteger=12)),
           "conditions": None, "medications": {"resourceType": "Bundle", "type": "searchset", "total": 0}}
    r = run(pre)
    assert r.inputs == {"baseline_pain": 70.0, "baseline_function": 50.0}
    assert set(r.missing) == set(SCHEMA.names)
    assert {"age", "female"} <= {f.feature for f in r.findings if f.kind == "not_provided"}
    assert any(f.where == "prefetch.conditions" and f.kind == "not_provided" for f in r.findings)


def test_pain_on_a_0_100_scale_under_the_0_10_code_is_reported_not_converted():
    pre = complete_prefetch()
    pre["observations"]["entry"][0]["resource"].update(quantity(65, "{score}"))
    r = run(pre)
    assert "baseline_pain" not in r.inputs and "baseline_pain" in r.missing
    f = next(f for f in r.findings if f.feature == "baseline_pain")
    assert f.kind == "out_of_range" and "0-100 score sent under a 0-10 code" in f.message


def test_pain_in_a_percent_unit_is_a_wrong_unit():
    pre = complete_prefetch()
    pre["observations"]["entry"][0]["resource"].update(quantity(60, "%"))
    r = run(pre)
    assert "baseline_pain" not in r.inputs and kinds(r, "baseline_pain") == {"wrong_unit"}


def test_bmi_in_a_wrong_unit_is_reported_and_height_weight_are_converted_instead():
    pre = complete_prefetch()
    pre["observations"]["entry"][3]["resource"].update(quantity(0.039, "[lb_av]/[in_i]2"))
    r = run(pre)
    assert "bmi" not in r.inputs and kinds(r, "bmi") == {"wrong_unit"}
    pre["observations"]["entry"].pop(3)
    pre["observations"]["entry"] += [{"resource": observation("h-1", "8302-2", **quantity(69, "[in_i]"))},
                                     {"resource": observation("w-1", "29463-7", **quantity(180, "[lb_av]"))}]
    r = run(pre)
    assert r.inputs["bmi"] == pytest.approx(180 * 0.45359237 / (69 * 0.0254) ** 2, abs=1e-3)
    used = next(u for u in r.used if u.feature == "bmi")
    assert "69 [in_i] = 1.753 m" in used.detail and "180 [lb_av] = 81.65 kg" in used.detail


def test_recorded_bmi_contradicting_weight_and_height_of_the_same_day_is_not_used():
    pre = complete_prefetch()
    pre["observations"]["entry"] += [{"resource": observation("h-1", "8302-2", **quantity(170, "cm"))},
                                     {"resource": observation("w-1", "29463-7", **quantity(95, "kg"))}]
    r = run(pre)  # 95 / 1.7^2 = 32.9, recorded 27.4
    assert "bmi" not in r.inputs and kinds(r, "bmi") == {"contradictory"}


def test_two_different_values_on_the_same_day_are_contradictory_the_latest_day_wins_otherwise():
    pre = complete_prefetch()
    pre["observations"]["entry"].append({"resource": observation("pain-2", "72514-3", valueInteger=3)})
    r = run(pre)
    assert "baseline_pain" not in r.inputs and kinds(r, "baseline_pain") == {"contradictory"}
    pre["observations"]["entry"][-1]["resource"]["effectiveDateTime"] = day(1)
    r = run(pre)
    assert r.inputs["baseline_pain"] == 30.0
    assert "most recent of 2" in next(u.detail for u in r.used if u.feature == "baseline_pain")


def test_other_patient_unknown_type_invalid_stale_and_unknown_codes_are_reported():
    pre = complete_prefetch()
    extra = [observation("pain-x", "72514-3", patient="someone-else", valueInteger=9),
             {"resourceType": "AllergyIntolerance", "id": "al-1", "patient": {"reference": f"Patient/{PID}"}},
             {"resourceType": "Observation", "id": "bad-1", "code": {"text": "pain"},
              "subject": {"reference": f"Patient/{PID}"}, "valueInteger": 9},
             observation("bad-2", "72514-3", valueInteger="nine"),
             observation("odi-old", "97909-6", days_ago=400, valueInteger=70),
             observation("hr-1", "8867-4", **quantity(72, "/min")),
             observation("pain-p", "72514-3", status="preliminary", valueInteger=1)]
    pre["observations"]["entry"] += [{"resource": x} for x in extra]
    r = run(pre)
    assert r.inputs["baseline_pain"] == 60.0 and r.inputs["baseline_function"] == 38.0
    by_where = {f.where: f for f in r.findings}
    assert by_where["Observation/pain-x"].kind == "other_patient" and r.foreign == ["Observation/pain-x"]
    assert by_where["AllergyIntolerance"].kind == "unknown"
    assert by_where["Observation/bad-1"].kind == "invalid" and "status" in by_where["Observation/bad-1"].message
    assert by_where["Observation/bad-2"].kind == "invalid" and "valueInteger" in by_where["Observation/bad-2"].message
    assert by_where["Observation/odi-old"].kind == "stale"
    assert by_where["Observation"].kind == "unknown" and "8867-4" in by_where["Observation"].message
    assert by_where["Observation/pain-p"].kind == "ignored"


def test_patient_gender_other_partial_birth_date_and_unknown_smoking_answer():
    pre = complete_prefetch()
    pre["patient"] = patient(gender="other", birth="1970")
    pre["observations"]["entry"][4]["resource"].update(coded(SNOMED, "77176002"))
    r = run(pre)
    assert "female" not in r.inputs and kinds(r, "female") == {"unknown"}
    assert r.inputs["age"] == 54.0 and "year only" in next(u.detail for u in r.used if u.feature == "age")
    assert "current_smoker" not in r.inputs and kinds(r, "current_smoker") == {"unknown"}


def test_conditions_disagreeing_on_onset_and_medication_not_linked_to_lbp():
    pre = complete_prefetch()
    pre["conditions"]["entry"].append({"resource": condition("lbp-2", "278860009", onset_days_ago=2000)})
    pre["medications"] = bundle(medication("med-9", reason_ref="Condition/unrelated"))
    r = run(pre)
    assert "episode_months" not in r.inputs and kinds(r, "episode_months") == {"contradictory"}
    assert "lbp_medication" not in r.inputs
    assert any("never inferred" in f.message for f in r.findings if f.feature == "lbp_medication")


def test_patient_that_is_not_the_context_patient_is_not_used():
    pre = complete_prefetch()
    pre["patient"] = patient(pid="other-patient")
    r = run(pre)
    assert "age" not in r.inputs and "female" not in r.inputs
    assert any(f.kind == "other_patient" and f.where == "Patient/other-patient" for f in r.findings)
    assert r.foreign == ["Patient/other-patient"]


def test_site_codes_and_questionnaire_response_from_a_registry_file(tmp_path):
    site = tmp_path / "site-codes.yaml"
    site.write_text("""
observations:
  - id: rmdq_0_24
    feature: baseline_function
    label: Roland-Morris (site code)
    codes: [{system: "https://ehr.example.org/codes", code: "RMDQ", source: "[L] the site's own code"}]
    kind: score
    scale: [0, 24]
    units: ["", "{score}"]
questionnaires:
  - id: odi_form
    feature: baseline_function
    label: Oswestry (site form)
    urls: ["https://forms.example.org/Questionnaire/odi"]
    total_link_ids: ["odi-total"]
    scale: [0, 100]
    max_age_days: 90
""", "utf-8")
    reg = load_registry(site)
    pre = {"patient": patient(), "observations": bundle(
        observation("pain-1", "72514-3", valueInteger=5),
        observation("rm-1", "RMDQ", system="https://ehr.example.org/codes", days_ago=20, valueInteger=6))}
    assert run(pre, reg).inputs["baseline_function"] == 25.0
    pre["questionnaires"] = bundle({
        "resourceType": "QuestionnaireResponse", "id": "qr-1", "status": "completed",
        "questionnaire": "https://forms.example.org/Questionnaire/odi|2.1", "subject": {"reference": f"Patient/{PID}"},
        "authored": day(2) + "T10:00:00Z",
        "item": [{"linkId": "section-1", "answer": [{"valueInteger": 3}]},
                 {"linkId": "odi-total", "answer": [{"valueDecimal": 42}]}]})
    r = run(pre, reg)
    assert r.inputs["baseline_function"] == 42.0
    assert "QuestionnaireResponse/qr-1" in next(u.source for u in r.used if u.feature == "baseline_function")


def test_bad_site_registry_names_the_entry(tmp_path):
    site = tmp_path / "bad.yaml"
    site.write_text("observations:\n  - {id: fabq_pa_0_24, feature: fear_avoidance, kind: score, "
                    "codes: [{system: x, code: y, source: local}], units: ['']}\n", "utf-8")
    with pytest.raises(LbpError, match=r"fabq_pa_0_24.*scale"):
        load_registry(site)
    site.write_text("observations:\n  - {id: mine, feature: bmi, kind: quantity, units: {kg/m2: 1}, "
                    "codes: [{system: 'http://loinc.org', code: '39156-5', source: dup}]}\n", "utf-8")
    with pytest.raises(LbpError, match="also listed under bmi"):
        load_registry(site)


def test_every_shipped_code_names_its_source():
    reg = load_registry()
    codes = [c for e in (*reg.observations, *reg.conditions) for c in e.codes] + list(reg.referrals)
    assert codes and all(c.source.startswith(("[V]", "[S]", "[L]")) for c in codes)
    assert {"72514-3", "97909-6", "39156-5", "8302-2", "29463-7", "72166-2"} <= {c.code for c in codes}
