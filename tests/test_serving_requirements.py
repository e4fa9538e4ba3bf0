"""The API follows the one baseline-requirement rule (predict/required_inputs.py through
``Scorer.requirement``): baselines are optional fields, each outcome requested needs its own
baselines (recovery at least one of its definition's), every problem is named at once in the
field-error format, and in a batch a patient lacking one is left unscored without failing the rest."""
from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from predict import Scorer
from serving.app import create_app
from serving.requirements import OutcomeNeeds
from serving.settings import ServingSettings
from tests._small_model import small_model

COMP = "usual_care"
LOOPBACK = ("127.0.0.1", 50000)
CONT = ["pain", "global_recovery"]  # what a patient with a pain score only can have


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load(small_model().artifact)


@pytest.fixture(scope="module")
def c(scorer):
    app = create_app(scorer, ServingSettings(model_path=None, warmup=False, docs=True, api_keys="",
                                             allow_unauthenticated=False, metrics_require_auth=False))
    with TestClient(app, client=LOOPBACK) as client:
        yield client


def by_field(r):
    return {d["field"]: d for d in r.json()["detail"]}


def test_outcome_needs_come_from_the_scorer(scorer):
    needs = OutcomeNeeds.of(scorer)
    for o in scorer.outcomes:  # the same rule as the scorer, outcome by outcome
        assert needs.by_outcome[o] == scorer.requirement([o])
    assert needs.scorable({"baseline_pain": 50.0}) == [o for o in scorer.outcomes if o != "function"]
    assert needs.scorable({"baseline_function": 50.0}) == [o for o in scorer.outcomes if o != "pain"]
    assert needs.scorable({}) == []
    assert needs.lacking({"baseline_pain": 50.0, "baseline_function": math.nan}) == {"function": ["baseline_function"]}


def test_pain_only_patient_scores_the_outcomes_it_allows(c, scorer):
    p = {**scorer.example_patient(), "baseline_function": None}
    r = c.post("/v1/score", json={"patient": p, "comparator": COMP, "outcomes": CONT})
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert {v["outcome"] for v in res["outcomes"].values()} == set(CONT)
    # the baseline no outcome requested needs is imputed and listed among the missing inputs
    assert "baseline_function" in {m["name"] for m in res["missing"]}
    direct = scorer.score([{k: v for k, v in p.items() if v is not None}], COMP, CONT)[0]
    assert res["scores"] == pytest.approx(direct["scores"], nan_ok=True)


def test_a_needed_baseline_missing_is_named_with_the_outcome(c, scorer):
    p = {k: v for k, v in scorer.example_patient().items() if k != "baseline_function"}
    r = c.post("/v1/score", json={"patient": p, "comparator": COMP})  # every outcome
    assert r.status_code == 422
    body = r.json()
    assert set(by_field(r)) == {"patient.baseline_function"} and "patient.baseline_function" in body["message"]
    item = body["detail"][0]
    assert item["loc"] == ["body", "patient", "baseline_function"] and item["type"] == "missing"
    assert item["outcomes"] == ["function"] and "needed to predict function" in item["msg"]
    assert "allow pain, global_recovery" in item["msg"]


def test_neither_baseline_names_both_and_every_outcome(c):
    r = c.post("/v1/score", json={"patient": {"age": 40}, "comparator": COMP})
    assert r.status_code == 422
    f = by_field(r)
    assert set(f) == {"patient.baseline_pain", "patient.baseline_function"}
    assert f["patient.baseline_pain"]["outcomes"] == ["pain", "global_recovery"]
    assert f["patient.baseline_function"]["outcomes"] == ["function", "global_recovery"]
    assert "global_recovery (this or baseline_function)" in f["patient.baseline_pain"]["msg"]


def test_requirement_and_field_errors_are_reported_together(c):
    r = c.post("/v1/score", json={"patient": {"baseline_pain": 50, "age": 300, "shoe_size": 1},
                                  "comparator": "acupuncture", "outcomes": ["function"]})
    assert r.status_code == 422
    assert set(by_field(r)) == {"patient.age", "patient.shoe_size", "comparator", "patient.baseline_function"}
    assert r.json()["message"].startswith("4 invalid fields")


def test_batch_leaves_out_only_the_patient_lacking_a_baseline(c, scorer):
    full = scorer.example_patient()
    pain_only = {k: v for k, v in full.items() if k != "baseline_function"}
    none = {k: v for k, v in full.items() if not k.startswith("baseline_")}
    before = _not_scored(c)
    r = c.post("/v1/score/batch", json={"patients": [full, none, pain_only], "comparator": COMP, "outcomes": CONT})
    assert r.status_code == 200, r.text
    body = r.json()
    res = body["results"]
    assert res[1] is None and res[0] is not None and res[2] is not None
    alone = c.post("/v1/score", json={"patient": full, "comparator": COMP, "outcomes": CONT}).json()["result"]
    assert res[0]["scores"] == pytest.approx(alone["scores"], nan_ok=True)  # the others are scored as alone
    ns = body["not_scored"]
    assert ns["count"] == 1 and {d["patient_index"] for d in ns["detail"]} == {1}
    assert {d["field"] for d in ns["detail"]} == {"patients[1].baseline_pain", "patients[1].baseline_function"}
    assert all(d["outcomes"] == ["global_recovery"] or "pain" in d["outcomes"] for d in ns["detail"])
    assert _not_scored(c) == before + 1
    # a complete batch has no not_scored key (responses unchanged)
    ok = c.post("/v1/score/batch", json={"patients": [full], "comparator": COMP}).json()
    assert "not_scored" not in ok


def test_batch_where_no_patient_can_be_scored_is_refused(c):
    r = c.post("/v1/score/batch", json={"patients": [{"age": 40}, {"baseline_pain": 30}], "comparator": COMP,
                                        "outcomes": ["function"]})
    assert r.status_code == 422
    assert {(d["patient_index"], d["field"]) for d in r.json()["detail"]} == {
        (0, "patients[0].baseline_function"), (1, "patients[1].baseline_function")}


def test_openapi_says_which_outcomes_need_each_baseline(c):
    schemas = c.get("/openapi.json").json()["components"]["schemas"]
    props = schemas["Patient"]["properties"]
    assert "required" not in schemas["Patient"]
    assert props["baseline_pain"]["x-needed-by"] == ["pain", "global_recovery"]
    assert props["baseline_function"]["x-needed-by"] == ["function", "global_recovery"]
    assert "required to predict pain" in props["baseline_pain"]["description"]
    assert "pain needs baseline_pain" in schemas["Patient"]["description"]
    assert "at least one of baseline_pain or baseline_function" in schemas["Patient"]["description"]
    assert "not_scored" in schemas["BatchScoreResponse"]["properties"]


def _not_scored(c) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith('lbp_patients_not_scored_total{endpoint="/v1/score/batch",reason="missing_baseline"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_calculator_predicts_what_the_baselines_entered_allow(c, scorer):
    pain_only = {k: v for k, v in scorer.example_patient().items() if k != "baseline_function"}
    r = c.post("/calculator/score", json={"patient": pain_only, "comparator": COMP})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {v["outcome"] for v in body["result"]["outcomes"].values()} == set(CONT)
    assert body["not_predicted"] == [{"outcome": "function", "needs": ["baseline_function"]}]
    same = c.post("/v1/score", json={"patient": pain_only, "comparator": COMP, "outcomes": CONT}).json()["result"]
    assert body["result"]["scores"] == pytest.approx(same["scores"], nan_ok=True)
    full = c.post("/calculator/score", json={"patient": scorer.example_patient(), "comparator": COMP}).json()
    assert "not_predicted" not in full
    r = c.post("/calculator/score", json={"patient": {"age": 40}, "comparator": COMP})
    assert r.status_code == 422 and set(by_field(r)) == {"patient.baseline_pain", "patient.baseline_function"}
    page = c.get("/calculator").text
    assert "Needed to predict pain intensity. Global recovery needs this or the other baseline score." in page
    assert 'id="f-baseline_pain"' in page and 'id="f-baseline_pain" required' not in page
