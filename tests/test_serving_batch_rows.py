"""One bad patient never sinks (or silently passes) a batch (serving/batch.py): every kind of bad
field leaves only its patient unscored, named with its index, field and reason and counted by
reason; the good patients' results equal scoring them alone; what is about the request itself
stays a whole-request 422."""
from __future__ import annotations

import pytest

from predict.errors import Problem, ValidationFailed
from serving.batch import REASONS, reason_of
from tests.test_serving_app import DoubleScorer, bad_fields, client

COMP = "usual_care"
GOOD = {"baseline_pain": 62, "baseline_function": 41, "age": 47, "pain_site": "back_and_leg"}

# (bad patient, field named, reason counted): one of each kind of bad field
BAD = [
    ({**GOOD, "age": "forty"}, "age", "wrong_type"),
    ({**GOOD, "age": True}, "age", "wrong_type"),
    ({**GOOD, "female": 1.0}, "female", "wrong_type"),
    ({**GOOD, "age": 300}, "age", "out_of_range"),              # impossible: outside the schema's limits
    ({**GOOD, "baseline_pain": -5}, "baseline_pain", "out_of_range"),
    ({**GOOD, "bmi": 1e308}, "bmi", "out_of_range"),
    ({**GOOD, "pain_site": "knee"}, "pain_site", "not_allowed_value"),  # unknown category
    ({**GOOD, "female": 2}, "female", "not_allowed_value"),
    ({**GOOD, "shoe_size": 44}, "shoe_size", "unknown_field"),
    ({"baseline_pain": 50}, "baseline_function", "missing_baseline"),
]


def _alone(c, patient) -> dict:
    r = c.post("/v1/score", json={"patient": patient, "comparator": COMP})
    assert r.status_code == 200, r.text
    return r.json()["result"]


@pytest.mark.parametrize("bad, name, reason", BAD)
def test_each_kind_of_bad_field_leaves_only_its_patient_unscored(bad, name, reason):
    other = {**GOOD, "baseline_pain": 30, "age": 70}
    with client() as c:
        r = c.post("/v1/score/batch", json={"patients": [GOOD, bad, other], "comparator": COMP})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["results"][1] is None
        assert out["results"][0] == _alone(c, GOOD) and out["results"][2] == _alone(c, other)
    ns = out["not_scored"]
    assert ns["count"] == 1 and ns["by_reason"] == {reason: 1}
    assert [(d["patient_index"], d["field"]) for d in ns["detail"]] == [(1, f"patients[1].{name}")]
    assert ns["detail"][0]["loc"] == ["body", "patients", 1, name] and ns["detail"][0]["msg"]
    assert ns["message"] == f"1 invalid field: patients[1].{name}"
    assert "input" not in ns["detail"][0]  # values are not echoed back


def test_a_patient_that_is_not_an_object_is_a_row_problem():
    with client() as c:
        r = c.post("/v1/score/batch", json={"patients": [GOOD, 7, [1]], "comparator": COMP})
    assert r.status_code == 200, r.text
    ns = r.json()["not_scored"]
    assert r.json()["results"][1:] == [None, None]
    assert ns["count"] == 2 and ns["by_reason"] == {"wrong_type": 2}
    assert {d["field"] for d in ns["detail"]} == {"patients[1]", "patients[2]"}


def test_every_problem_of_every_patient_is_named_and_counted_by_reason():
    pts = [{**GOOD, "age": 300, "shoe_size": 1}, GOOD, {"age": "x"}, {**GOOD, "pain_site": "knee"}]
    d = DoubleScorer()
    with client(d) as c:
        r = c.post("/v1/score/batch", json={"patients": pts, "comparator": COMP, "outcomes": ["pain"]})
        before = c.get("/metrics").text
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x is None for x in out["results"]] == [True, False, True, True]
    ns = out["not_scored"]
    assert {(x["patient_index"], x["field"]) for x in ns["detail"]} == {
        (0, "patients[0].age"), (0, "patients[0].shoe_size"), (2, "patients[2].age"),
        (2, "patients[2].baseline_pain"), (2, "patients[2].baseline_function"),  # the double: every baseline
        (3, "patients[3].pain_site")}
    by_field = {x["field"]: x for x in ns["detail"]}
    assert by_field["patients[2].baseline_pain"]["outcomes"] == ["pain"]  # pain needs its baseline
    assert ns["count"] == 3
    assert ns["by_reason"] == {"missing_baseline": 1, "unknown_field": 1, "wrong_type": 1, "out_of_range": 1,
                               "not_allowed_value": 1}
    assert all(reason_of(x) in REASONS for x in ns["detail"])
    assert d.calls[-1][0] == [{"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47.0, "pain_site": "back_and_leg"}]
    for reason, n in ns["by_reason"].items():  # counted in the metrics by reason
        line = f'lbp_patients_not_scored_total{{endpoint="/v1/score/batch",reason="{reason}"}} {float(n)}'
        assert line in before, reason


def test_a_batch_where_no_patient_can_be_scored_is_refused_naming_every_problem():
    with client() as c:
        r = c.post("/v1/score/batch", json={"patients": [{**GOOD, "age": 300}, {"baseline_pain": 1}],
                                            "comparator": COMP})
    assert bad_fields(r) == {"patients[0].age", "patients[1].baseline_function"}
    assert sorted(d["patient_index"] for d in r.json()["detail"]) == [0, 1]


@pytest.mark.parametrize("payload, field", [
    ({"patients": [GOOD], "comparator": "acupuncture"}, "comparator"),
    ({"patients": [GOOD], "comparator": COMP, "outcomes": ["sleep"]}, "outcomes[0]"),
    ({"patients": [GOOD], "comparator": COMP, "extra": 1}, "extra"),
    ({"patients": GOOD, "comparator": COMP}, "patients"),
    ({"patients": [], "comparator": COMP}, "patients"),
])
def test_what_is_about_the_request_itself_stays_a_whole_request_error(payload, field):
    with client() as c:
        r = c.post("/v1/score/batch", json=payload)
    assert field in bad_fields(r)


def test_a_whole_request_error_names_the_patients_problems_too():
    with client() as c:
        r = c.post("/v1/score/batch", json={"patients": [GOOD, {**GOOD, "age": 300}, {"age": 40}],
                                            "comparator": "acupuncture"})
    assert bad_fields(r) == {"comparator", "patients[1].age", "patients[2].baseline_pain",
                             "patients[2].baseline_function"}


def test_malformed_json_is_a_whole_request_error():
    with client() as c:
        r = c.post("/v1/score/batch", content=b'{"patients": [', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_a_patient_the_scorer_refuses_is_left_out_and_named():
    class Picky(DoubleScorer):
        def score(self, patients, comparator, outcomes=None):
            bad = [i for i, p in enumerate(patients) if p.get("age") == 99.0]
            if bad:
                self.calls.append(([dict(p) for p in patients], comparator, outcomes))
                raise ValidationFailed([Problem("implausible", "age is implausible here", column="age", row=i,
                                                scope="participant") for i in bad], what="patients")
            return super().score(patients, comparator, outcomes)

    with client(Picky()) as c:
        r = c.post("/v1/score/batch", json={"patients": [{**GOOD, "age": 99}, GOOD], "comparator": COMP})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["results"][0] is None and out["results"][1] == _alone(c, GOOD)
    assert out["not_scored"]["by_reason"] == {"invalid": 1}
    assert out["not_scored"]["detail"] == [{"loc": ["body", "patients", 0, "age"], "field": "patients[0].age",
                                            "type": "implausible", "msg": "age is implausible here",
                                            "patient_index": 0}]


def test_a_request_level_scorer_refusal_is_still_a_422():
    fail = ValidationFailed([Problem("unknown_comparator", "no", column="comparator")], what="request")
    with client(DoubleScorer(fail=fail)) as c:
        r = c.post("/v1/score/batch", json={"patients": [GOOD, GOOD], "comparator": COMP})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "comparator"


def test_an_all_good_batch_has_no_not_scored_key():
    with client() as c:
        out = c.post("/v1/score/batch", json={"patients": [GOOD, GOOD], "comparator": COMP}).json()
    assert "not_scored" not in out and len(out["results"]) == 2


def test_openapi_still_documents_the_batch_patients_with_the_patient_schema():
    with client() as c:
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
    pts = schemas["BatchScoreRequest"]["properties"]["patients"]
    assert pts["items"] == {"$ref": "#/components/schemas/Patient"} and "Patient" in schemas
    assert pts["minItems"] == 1 and pts["maxItems"] == 1000
    assert "by_reason" in schemas["BatchScoreResponse"]["properties"]["not_scored"]["description"]



def test_scored_patients_with_unusual_inputs_are_counted_by_kind(scorer):
    """Implausible-but-possible values (outside most training participants' range, rare levels, most
    modifiers missing) are scored and counted in ``warned``, never excluded; a batch without them
    has no ``warned``."""
    from predict.clinical_warnings import WARNING_KINDS, warning_kind
    from tests.test_clinical_warnings import _patients

    patients = _patients(scorer, 12, seed=5)
    comp = scorer.comparators[0]
    with client(scorer) as c:
        r = c.post("/v1/score/batch", json={"patients": patients, "comparator": comp})
    with client() as c:  # a scorer whose results carry no warnings
        plain = c.post("/v1/score/batch", json={"patients": [GOOD, GOOD], "comparator": COMP})
    assert r.status_code == 200 and plain.status_code == 200, r.text
    out = r.json()
    assert "not_scored" not in out and all(res is not None for res in out["results"])
    kinds = [{warning_kind(w) for w in res["warnings"]} - {None} for res in out["results"]]
    assert out["warned"]["count"] == sum(bool(k) for k in kinds) > 0
    assert out["warned"]["by_kind"] == {k: n for k in WARNING_KINDS if (n := sum(k in s for s in kinds))}
    assert out["warned"]["by_kind"]["outside_training_range"] > 0 and out["warned"]["by_kind"]["mostly_imputed"] >= 1
    assert "warned" not in plain.json()
