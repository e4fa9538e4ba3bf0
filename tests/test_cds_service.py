"""The CDS Hooks service end to end on the small trained model: discovery, patient-view cards for a
complete, a sparse and a wrong-unit patient (R4 JSON bundles), order-select, 412 and 422, and no
patient data in the logs."""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from predict import Scorer
from serving.app import create_app
from serving.cds.cards import SUMMARY_MAX
from serving.settings import ServingSettings
from tests._small_model import small_model
from tests.test_cds_fhir_map import SNOMED, bundle, complete_prefetch, observation, patient, quantity

ISS = "https://ehr.example.org"
BASE = "https://cds.example.org"
PID = "pat-5d1e"


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load(small_model().artifact)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    k = ec.generate_private_key(ec.SECP384R1())
    d = tmp_path_factory.mktemp("cds")
    (d / "ehr.pem").write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    (d / "issuers.json").write_text('{"issuers": {"%s": {"keys": ["ehr.pem"]}}}' % ISS)
    return k, d / "issuers.json"


@pytest.fixture(scope="module")
def client(scorer, key):
    settings = ServingSettings(model_path=None, api_keys="", warmup=False, cds_trusted_issuers=key[1],
                               cds_base_url=BASE, cds_feedback_db=f"sqlite:///{key[1].parent / 'feedback.sqlite'}")
    with TestClient(create_app(scorer, settings), client=("127.0.0.1", 5000)) as c:
        yield c


def auth(key, path):
    now = int(time.time())
    tok = jwt.encode({"iss": ISS, "aud": BASE + path, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex},
                     key[0], algorithm="ES384", headers={"kid": "k1"})
    return {"Authorization": f"Bearer {tok}"}


def today():
    return datetime.now(timezone.utc).date()


def call(client, key, prefetch, service="lbp-exercise-benefit", hook="patient-view", **context):
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "fhirServer": "https://ehr.example.org/fhir",
            "context": {"userId": "Practitioner/dr-1", "patientId": PID, **context}, "prefetch": prefetch}
    return client.post(f"/cds-services/{service}", json=body, headers=auth(key, f"/cds-services/{service}"))


def test_discovery_lists_the_services_with_prefetch_templates(client, key):
    r = client.get("/cds-services", headers=auth(key, "/cds-services"))
    assert r.status_code == 200
    services = {s["id"]: s for s in r.json()["services"]}
    pv = services["lbp-exercise-benefit"]
    assert pv["hook"] == "patient-view" and "synthetic" in pv["description"]
    pre = pv["prefetch"]
    assert pre["patient"] == "Patient/{{context.patientId}}"
    for code in ("http://loinc.org|72514-3", "http://loinc.org|97909-6", "http://loinc.org|39156-5",
                 "http://loinc.org|72166-2", "http://loinc.org|8302-2", "http://loinc.org|29463-7"):
        assert code in pre["observations"]
    assert "http://snomed.info/sct|279039007" in pre["conditions"]
    assert pre["medications"].startswith("MedicationStatement?patient={{context.patientId}}")
    assert services["lbp-exercise-benefit-referral"]["hook"] == "order-select"


def test_complete_patient_card(client, key, scorer):
    r = call(client, key, complete_prefetch(today(), PID))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    # the same inputs scored directly give the numbers the card shows
    inputs = {"baseline_pain": 60.0, "baseline_function": 38.0, "age": float(_age(today())), "female": 1,
              "current_smoker": 0, "bmi": 27.4, "employed": 1, "fear_avoidance": 50.0, "leg_pain": 1,
              "lbp_medication": 1, "episode_months": round((400 / 30.4375), 1)}
    expect = scorer.score([inputs], "usual_care")[0]["outcomes"]["pain__short"]["benefit"]
    assert card["summary"].startswith("Exercise vs usual care: pain/100 benefit ")
    assert f"{expect['estimate']:+.1f} (95% CI {expect['ci'][0]:+.1f} to {expect['ci'][1]:+.1f})" in card["summary"]
    assert "SYNTHETIC" in card["summary"] and len(card["summary"]) <= SUMMARY_MAX
    assert card["indicator"] == "info"
    assert card["source"]["url"] == BASE + "/v1/model/card" and scorer.model_id in card["source"]["label"]
    d = card["detail"]
    assert d.startswith("> **Synthetic data: not for clinical use.**")
    for comp in ("vs usual care", "vs no treatment", "vs other conservative care"):
        assert comp in d
    assert "**Why**" in d and "Observation/pain-1, LOINC 72514-3" in d and "rescaled from 0-10 to 60 on 0-100" in d
    assert "**Missing inputs**" in d and "Education beyond high school" in d


def _age(t):
    return t.year - 1978 - ((t.month, t.day) < (6, 2))


def test_sparse_patient_still_scored_with_missing_inputs_listed(client, key, scorer):
    pre = {"patient": patient(PID, gender="male", birth=None),
           "observations": bundle(observation("p", "72514-3", patient=PID, today=today(), valueInteger=4),
                                  observation("o", "97909-6", patient=PID, today=today(), valueInteger=20))}
    r = call(client, key, pre)
    (card,) = r.json()["cards"]
    assert card["summary"].startswith("Exercise vs usual care:") and card["indicator"] == "info"
    assert f"**Missing inputs** ({len(scorer.schema) - 1})" in card["detail"] and "has no birthDate" in card["detail"]


def test_wrong_units_give_a_warning_card_without_the_outcome_they_need(client, key):
    pre = complete_prefetch(today(), PID)
    pre["observations"]["entry"][0]["resource"].update(quantity(72, "{score}"))  # 0-100 under the 0-10 code
    pre["observations"]["entry"][3]["resource"].update(quantity(27.4, "kg"))  # BMI in a weight unit
    (card,) = call(client, key, pre).json()["cards"]
    assert card["indicator"] == "warning"
    # the pain score is not used (never guessed): pain is not predicted; what the function score allows is
    assert card["summary"].startswith("Exercise vs usual care: function/100 benefit ")
    d = card["detail"]
    assert "0-100 score sent under a 0-10 code" in d and "[wrong unit]" in d and "72514-3" in d
    assert "pain (0-100): needs Baseline pain (0-100), not in the record" in d.split("**Not predicted**")[1]
    assert "- pain (0-100), " not in d
    ext = card["extension"]["org.lbp-benefit.inputs"]
    assert ext["not_predicted"] == [{"outcome": "pain", "needs": ["baseline_pain"]}]


def test_order_select_answers_only_for_a_selected_physiotherapy_referral(client, key):
    sr = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
          "code": {"coding": [{"system": SNOMED, "code": "91251008"}]}, "subject": {"reference": f"Patient/{PID}"}}
    draft = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": sr}]}
    pre = complete_prefetch(today(), PID)
    r = call(client, key, pre, "lbp-exercise-benefit-referral", "order-select",
             selections=["ServiceRequest/sr-1"], draftOrders=draft)
    assert r.status_code == 200 and len(r.json()["cards"]) == 1
    r = call(client, key, pre, "lbp-exercise-benefit-referral", "order-select", selections=[], draftOrders=draft)
    assert r.json() == {"cards": []}


def test_missing_prefetch_is_412_and_bad_requests_are_422(client, key):
    r = call(client, key, {"observations": None})
    assert r.status_code == 412 and r.json()["resourceType"] == "OperationOutcome"
    assert "'patient'" in r.json()["issue"][0]["diagnostics"]
    r = call(client, key, complete_prefetch(today(), PID), hook="order-sign")
    assert r.status_code == 422 and "hook" in r.json()["message"]
    r = client.post("/cds-services/lbp-exercise-benefit", json={"hook": "patient-view", "context": {}},
                    headers=auth(key, "/cds-services/lbp-exercise-benefit"))
    assert r.status_code == 422 and "hookInstance" in r.json()["message"]
    r = client.post("/cds-services/nope", json={}, headers=auth(key, "/cds-services/nope"))
    assert r.status_code == 404


def test_no_patient_data_in_logs(client, key, caplog):
    caplog.set_level(logging.DEBUG)
    pre = complete_prefetch(today(), PID)
    pre["observations"]["entry"][3]["resource"].update(quantity(31.987, "kg/m2"))
    assert call(client, key, pre).status_code == 200
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in (PID, "31.987", "Testperson", "1978-06-02", "Ibuprofen"):
        assert secret not in text


# ---------------------------------------------------------------- the baseline requirement (real EHR records)

def _without(prefetch, *ids):
    obs = prefetch["observations"]
    obs["entry"] = [e for e in obs["entry"] if e["resource"]["id"] not in ids]
    obs["total"] = len(obs["entry"])
    return prefetch


def test_record_without_the_function_questionnaire_scores_pain_and_recovery(client, key, scorer):
    pre = _without(complete_prefetch(today(), PID), "odi-1")  # a pain score, no ODI: common in EHR records
    r = call(client, key, pre)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert card["summary"].startswith("Exercise vs usual care: pain/100 benefit ")
    inputs = {"baseline_pain": 60.0, "age": float(_age(today())), "female": 1, "current_smoker": 0, "bmi": 27.4,
              "employed": 1, "fear_avoidance": 50.0, "leg_pain": 1, "lbp_medication": 1,
              "episode_months": round((400 / 30.4375), 1)}
    allowed = [o for o in scorer.outcomes if o != "function"]
    expect = scorer.score([inputs], "usual_care", allowed)[0]
    b = expect["outcomes"]["pain__short"]["benefit"]
    assert f"{b['estimate']:+.1f} (95% CI {b['ci'][0]:+.1f} to {b['ci'][1]:+.1f})" in card["summary"]
    d = card["detail"]
    rec = next(v for v in expect["outcomes"].values() if v["outcome"] == "global_recovery")
    assert f"{100 * rec['benefit']['estimate']:+.0f} per 100" in d  # recovery predicted from the pain score alone
    assert "- function (0-100), " not in d  # no function prediction in any comparator block
    assert "**Not predicted**" in d and "function (0-100): needs Baseline function (0-100), not in the record" in d
    assert "97909-6" in d.split("**Not predicted**")[1]  # the code to record it
    # the imputed baseline is listed among the missing inputs, like any other imputed input
    missing = d.split("**Missing inputs**")[1].split("\n\n")[0]
    assert "Baseline function" in missing
    ext = card["extension"]["org.lbp-benefit.inputs"]
    assert ext["prediction"] is True and ext["reason"] is None
    assert ext["not_predicted"] == [{"outcome": "function", "needs": ["baseline_function"]}]
    assert "baseline_function" in ext["missing"]


def test_record_with_neither_baseline_gets_no_prediction_and_the_codes(client, key):
    pre = _without(complete_prefetch(today(), PID), "odi-1", "pain-1")
    (card,) = call(client, key, pre).json()["cards"]
    assert card["summary"] == "Exercise therapy benefit: not computed, baseline pain and function score missing"
    assert "72514-3" in card["detail"] and "97909-6" in card["detail"]
    ext = card["extension"]["org.lbp-benefit.inputs"]
    assert ext["prediction"] is False and "not_predicted" not in ext


def test_complete_record_card_has_nothing_about_outcomes_not_predicted(client, key):
    (card,) = call(client, key, complete_prefetch(today(), PID)).json()["cards"]
    assert "Not predicted" not in card["detail"] and "- function (0-100), " in card["detail"]
    assert "not_predicted" not in card["extension"]["org.lbp-benefit.inputs"]


# ----------------------------------------------------------------------------- by hand, session 12 (s12u)
def _with_patient(pre, birth):
    pre["patient"] = patient(PID, birth=birth)
    return pre


def test_a_child_gets_no_prediction(client, key):
    """A 12-year-old's age is outside the ages the model is for: no prediction (before s12u the age was
    left out, imputed from adults, and the child scored as an adult)."""
    t = today()
    pre = _with_patient(complete_prefetch(t, PID), f"{t.year - 12}-01-01")
    (card,) = call(client, key, pre).json()["cards"]
    assert card["summary"] == ("Exercise therapy benefit: not computed, the patient's age is outside the ages the "
                               "model is for (18-100 years)")
    assert card["indicator"] == "warning" and "benefit +" not in card["detail"] and "95% CI" not in card["detail"]
    assert card["extension"]["org.lbp-benefit.inputs"]["prediction"] is False
    pre = _with_patient(complete_prefetch(t, PID), f"{t.year - 40}-01-01")  # an adult: scored
    assert call(client, key, pre).json()["cards"][0]["summary"].startswith("Exercise vs usual care: pain/100")


def test_baselines_in_the_record_but_unusable_are_not_called_missing(client, key):
    """Implausible baseline values (12 on the 0-10 scale, ODI 140%) are in the record: the card says
    they are not usable, not that they are missing; a baseline truly absent is still 'missing'."""
    pre = complete_prefetch(today(), PID)
    pre["observations"]["entry"][0]["resource"].update(quantity(12, "{score}"))
    pre["observations"]["entry"][1]["resource"].update(quantity(140, "%"))
    (card,) = call(client, key, pre).json()["cards"]
    assert card["summary"] == ("Exercise therapy benefit: not computed, baseline pain and function scores in the "
                               "record not usable (see below)")
    assert "value 12 is outside the 0-10 scale" in card["detail"] and "value 140 is outside" in card["detail"]
    pre = _without(complete_prefetch(today(), PID), "odi-1")
    pre["observations"]["entry"][0]["resource"].update(quantity(12, "{score}"))
    (card,) = call(client, key, pre).json()["cards"]
    assert card["summary"].endswith("baseline pain score in the record not usable (see below); function score missing")


def test_a_patient_unlike_the_trials_is_said_in_the_summary_and_once_in_the_detail(client, key, scorer):
    """A 93-year-old with a BMI of 47 (accepted, outside most trial participants): the card is a
    warning, its summary says the patient is unlike the trials, and each warning about the
    patient's inputs is written once (not once per comparator)."""
    t = today()
    pre = _with_patient(complete_prefetch(t, PID), f"{t.year - 93}-01-01")
    pre["observations"]["entry"][3]["resource"].update(quantity(47, "kg/m2"))
    (card,) = call(client, key, pre).json()["cards"]
    s, d = card["summary"], card["detail"]
    assert card["indicator"] == "warning" and "; patient unlike the trials" in s and len(s) <= SUMMARY_MAX
    assert "SYNTHETIC" in s and "95% CI" in s
    assert "**About this patient's inputs** (every comparator)" in d
    warns = [line for line in d.splitlines() if line.startswith("- warning: ") and "outside the range of" in line]
    assert warns and len(warns) == len(set(warns))  # once each
    assert any("Age = 93 years" in w for w in warns)
    (plain,) = call(client, key, complete_prefetch(t, PID)).json()["cards"]
    assert "unlike the trials" not in plain["summary"] and plain["indicator"] == "info"


def test_patient_warnings_once_but_a_comparators_own_prediction_warning_stays_with_it():
    from predict.clinical_warnings import OUTSIDE_SCALE, RARE_PATIENT
    from serving.cds import cards

    rare = RARE_PATIENT + " (further from the centre ...): the prediction extrapolates"
    scale = f"pain__short: the predicted outcome under the comparator (-3.2) {OUTSIDE_SCALE}: ..."
    results = {"usual_care": {"warnings": [rare]}, "psychological": {"warnings": [rare, scale, "few trials included x"]}}
    assert cards._patient_warnings(results) == [rare]
    block = cards._comparator_block(results["psychological"], "psychological", [], cards.SYNTHETIC_WORDS)
    assert any(OUTSIDE_SCALE in line for line in block) and not any(RARE_PATIENT in line for line in block)
    assert any("few trials" in line for line in block)


def test_a_card_for_a_patient_the_model_knows_nothing_about_says_it_cannot_tell():
    """The 93-year-old with BMI 47 under the default model (s12u): moderate-term pain PI -94 to +95.
    Summary, table and line say "uncertain"/"cannot tell" with both probabilities and low
    confidence; an ordinary outcome next to it keeps its word."""
    from predict import verdict as V
    from predict.clinical_warnings import RARE_TEXT
    from serving.cds import cards
    from serving.cds.fhir_map import MapResult

    def outcome(est, ci, pi, follow_up):
        return {"outcome": "pain", "follow_up": follow_up, "available": True, "scale": "0-100",
                "intervention": {"expected": 40.0, "interval": None}, "comparator": {"expected": 40.0 + est, "interval": None},
                "benefit": {"estimate": est, "ci": ci, "prediction_interval": pi}, "smallest_worthwhile": {"threshold": 12.4}}
    r = {"outcomes": {"pain__moderate": outcome(0.3, [-92.2, 92.8], [-94.0, 94.7], "moderate"),
                      "pain__long": outcome(6.3, [-6.3, 18.9], [-6.4, 19.0], "long")},
         "warnings": [RARE_TEXT.format(pct=99.9, f=8.0)], "missing": [], "top_factors": []}
    V.annotate([r])
    assert r["outcomes"]["pain__moderate"]["verdict"]["level"] == "uncertain"
    assert r["outcomes"]["pain__long"]["verdict"]["level"] == "unlikely"
    card = cards.prediction_card({"usual_care": r}, ["usual_care"], MapResult({}, [], [], []), {},
                                 {"label": "x", "url": "http://127.0.0.1/card"}, False, "")
    s, d = card["summary"], card["detail"]
    assert "cannot tell if worthwhile" in s and "unlikely" not in s and len(s) <= SUMMARY_MAX
    assert f"**uncertain**: {V.UNCERTAIN_REASON}" in d and "of a worthwhile harm" in d
    assert V.LOW_CONFIDENCE_TEXT in d
    assert "unlikely worthwhile" in d and "**unlikely** to clear it" in d  # the ordinary outcome, as before
