"""The CDS Hooks service over HTTP on the small trained model: a record of another patient, fetch
failures, FHIR server fetch (a loopback FHIR server), the machine-readable input account, the
feedback endpoint with its durable store, the override-rate monitoring route and metrics, the
start-up configuration summary and ``lbp-benefit cds check-config``."""
from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import datetime, timezone

import jwt
import pytest
from fastapi.testclient import TestClient

from predict import Scorer
from serving.app import create_app
from serving.cds.feedback import FeedbackStore, band_of, wilson
from serving.cds.inputs_report import EXTENSION_KEY
from serving.settings import ServingSettings
from tests._fhir_server import fhir_server
from tests._small_model import small_model
from tests.test_cds_fhir_map import complete_prefetch, observation
from tests.test_cds_service import BASE, ISS, PID, auth, key  # noqa: F401 - key is a fixture

SERVICE = "/cds-services/lbp-exercise-benefit"


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load(small_model().artifact)


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('fb') / 'feedback.sqlite'}"


def make_client(scorer, key, db_url, **kw):
    settings = ServingSettings(model_path=None, api_keys="mon-key", warmup=False, cds_trusted_issuers=key[1],
                               cds_base_url=BASE, cds_feedback_db=db_url, **kw)
    return TestClient(create_app(scorer, settings), client=("127.0.0.1", 5000))


@pytest.fixture(scope="module")
def client(scorer, key, db_url):
    with make_client(scorer, key, db_url) as c:
        yield c


def today():
    return datetime.now(timezone.utc).date()


def post(client, key, prefetch, path=SERVICE, **extra):
    body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/dr-1", "patientId": PID}, **extra}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return client.post(path, json=body, headers=auth(key, path))


def ext(card):
    return card["extension"][EXTENSION_KEY]


# ----------------------------------------------------------------------------- identity, fetch failures, account
def test_complete_card_carries_uuid_and_an_account_of_every_input(client, key, scorer):
    (card,) = post(client, key, complete_prefetch(today(), PID)).json()["cards"]
    uuid.UUID(card["uuid"])
    e = ext(card)
    names = [i["name"] for i in e["inputs"]]
    assert names[:2] == list(scorer.baselines) and set(names) == set(scorer.baselines) | set(scorer.schema.names)
    pain = next(i for i in e["inputs"] if i["name"] == "baseline_pain")
    assert pain["status"] == "used" and pain["value"] == 60.0 and "rescaled from 0-10" in pain["conversion"]
    assert pain["unit"] == "0-100"
    assert pain["source"] == {"references": ["Observation/pain-1"], "code": "http://loinc.org|72514-3",
                              "date": pain["source"]["date"]}
    edu = next(i for i in e["inputs"] if i["status"] == "missing")
    assert edu["why"] and edu["why"][0]["kind"] in ("no_mapping", "not_in_record")
    assert e["prediction"] is True and e["band"] in ("<0", "0-5", "5-10", ">=10") and e["missing"]
    shown = float(re.search(r"pain/100 benefit ([+-]\d+\.\d)", card["summary"]).group(1))
    assert e["band"] == band_of(shown, "pain", (0.0, 5.0, 10.0))  # the band of the benefit the summary shows


def test_another_patients_resource_stops_the_prediction_and_the_card_says_why(client, key):
    pre = complete_prefetch(today(), PID)
    pre["observations"]["entry"].append({"resource": observation("pain-other", "72514-3", patient="pat-other",
                                                                 today=today(), valueInteger=2)})
    (card,) = post(client, key, pre).json()["cards"]
    assert card["summary"].startswith("Exercise therapy benefit: not computed, the record holds another patient")
    assert card["indicator"] == "warning" and "Observation/pain-other" in card["detail"]
    e = ext(card)
    assert e["prediction"] is False and e["other_patient_resources"] == ["Observation/pain-other"]
    assert e["band"] == "no_prediction"
    assert {i["status"] for i in e["inputs"]} == {"read", "missing"}  # nothing was scored


def test_fetch_failure_is_not_no_data_and_the_card_does_not_ask_to_record_scores(client, key):
    pre = complete_prefetch(today(), PID)
    pre["observations"] = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "timeout", "diagnostics": "the Observation search timed out"}]}
    (card,) = post(client, key, pre).json()["cards"]
    assert "could not be read" in card["summary"] and "record one of" not in card["detail"]
    assert "may exist" in card["detail"] and card["indicator"] == "warning"
    e = ext(card)
    assert e["fetch_failures"] == {"observations": "error: the Observation search timed out"}
    pain = next(i for i in e["inputs"] if i["name"] == "baseline_pain")
    assert pain["status"] == "missing" and "fetch_failed" in {w["kind"] for w in pain["why"]}
    # without a prediction every missing input is listed, in the card and the extension
    assert "All inputs missing" in card["detail"] and "baseline_pain" in e["missing"] and "age" not in e["missing"]


def test_missing_baseline_in_a_readable_record_asks_to_record_it(client, key):
    pre = complete_prefetch(today(), PID)
    pre["observations"]["entry"] = [e for e in pre["observations"]["entry"] if e["resource"]["id"] != "pain-1"]
    (card,) = post(client, key, pre).json()["cards"]
    # what the function questionnaire allows is predicted; pain is not, and the card says what to record
    assert card["summary"].startswith("Exercise vs usual care: function/100 benefit ")
    assert "pain (0-100): needs Baseline pain (0-100), not in the record" in card["detail"]
    assert "record one of" in card["detail"].split("**Not predicted**")[1]
    assert ext(card)["not_predicted"] == [{"outcome": "pain", "needs": ["baseline_pain"]}]
    pain = next(i for i in ext(card)["inputs"] if i["name"] == "baseline_pain")
    assert pain["why"] == [{"kind": "not_in_record", "where": None,
                            "message": "no value for this input in the data provided"}]


# ----------------------------------------------------------------------------- FHIR server fetch
def _record_resources():
    pre = complete_prefetch(today(), PID)
    out = [pre["patient"]]
    for k in ("observations", "conditions", "medications"):
        out += [e["resource"] for e in pre[k]["entry"]]
    return out


def test_without_prefetch_the_service_fetches_the_patients_compartment(client, key, scorer, caplog):
    caplog.set_level(logging.DEBUG)
    with fhir_server(_record_resources(), page_size=4) as (base, state):
        auth_ = {"access_token": "fhir-token-1", "token_type": "Bearer", "expires_in": 300,
                 "scope": "patient/Observation.read patient/Patient.read", "subject": "cds-service"}
        r = post(client, key, None, fhirServer=base, fhirAuthorization=auth_)
        assert r.status_code == 200, r.text
        (card,) = r.json()["cards"]
        e = ext(card)
        assert e["prediction"] is True and sorted(e["fetched_from_fhir_server"]) == [
            "conditions", "medications", "observations", "patient"]
        assert next(i for i in e["inputs"] if i["name"] == "employed")["value"] == 1
        reqs = state.requests
    assert all(q["authorization"] == "Bearer fhir-token-1" for q in reqs)
    assert {q["path"] for q in reqs} == {f"/fhir/Patient/{PID}", "/fhir/Observation", "/fhir/Condition",
                                         "/fhir/MedicationStatement"}
    assert all(q["query"].get("patient") == [PID] for q in reqs if q["path"] != f"/fhir/Patient/{PID}")
    assert sum(q["path"] == "/fhir/Observation" for q in reqs) == 2  # 6 observations, pages of 4: next link
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert PID not in logged and "fhir-token-1" not in logged  # no patient id (httpx's URL lines), no token


def test_fhir_server_errors_and_timeouts_are_fetch_failures(scorer, key, db_url):
    with make_client(scorer, key, db_url, cds_fhir_timeout_s=0.5) as c, \
            fhir_server(_record_resources()) as (base, state):
        state.fail.add("Observation")
        state.slow["Condition"] = 6.0
        auth_ = {"access_token": "fhir-token-1", "token_type": "Bearer"}
        t0 = time.perf_counter()
        (card,) = post(c, key, None, fhirServer=base, fhirAuthorization=auth_).json()["cards"]
        assert time.perf_counter() - t0 < 5.0  # the 6 s search does not hold the card (0.5 s timeout)
        e = ext(card)
        assert e["fetch_failures"]["observations"] == "error: Observation search failed"
        assert "did not answer within 0.5 s" in e["fetch_failures"]["conditions"]
        assert "could not be read" in card["summary"]


def test_no_prefetch_and_no_fhir_authorization_is_412_and_http_to_a_remote_server_is_refused(client, key):
    r = post(client, key, None, fhirServer="https://ehr.example.org/fhir")
    assert r.status_code == 412 and "no fhirAuthorization" in r.json()["issue"][0]["diagnostics"]
    r = post(client, key, None, fhirServer="http://ehr.example.org/fhir",
             fhirAuthorization={"access_token": "t", "token_type": "Bearer"})
    assert r.status_code == 412 and "https" in r.json()["issue"][0]["diagnostics"]
    r = post(client, key, None, fhirServer="https://ehr.example.org/fhir",
             fhirAuthorization={"access_token": "t", "token_type": "Bearer", "patient": "pat-other"})
    assert r.status_code == 412 and "scoped to another patient" in r.json()["issue"][0]["diagnostics"]


# ----------------------------------------------------------------------------- feedback and monitoring
def feedback(client, key, items, service="lbp-exercise-benefit"):
    path = f"/cds-services/{service}/feedback"
    return client.post(path, json={"feedback": items}, headers=auth(key, path))


def test_feedback_is_stored_and_gives_the_override_rate_by_band(scorer, key, tmp_path):
    url = f"sqlite:///{tmp_path / 'fb.sqlite'}"
    ts = "2026-01-05T10:11:12Z"
    with make_client(scorer, key, url) as c:
        cards = [post(c, key, complete_prefetch(today(), PID)).json()["cards"][0] for _ in range(3)]
        band = ext(cards[0])["band"]
        assert feedback(c, key, [{"card": cards[0]["uuid"], "outcome": "accepted", "outcomeTimestamp": ts,
                                  "acceptedSuggestions": []}]).status_code == 200
        r = feedback(c, key, [{"card": cards[1]["uuid"], "outcome": "overridden", "outcomeTimestamp": ts,
                               "overrideReason": {"reason": {"code": "patient-declined",
                                                             "system": "https://ehr.example.org/reasons",
                                                             "display": "Patient declined"},
                                                  "userComment": "prefers walking"}},
                              {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": ts}])
        assert r.status_code == 200 and r.json() == {"stored": 2, "unknown_cards": 1}
        # a later feedback about the same card replaces the earlier one in the rate
        feedback(c, key, [{"card": "urn:uuid:" + cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": ts}])
        assert c.get("/v1/monitoring/cds-feedback").status_code == 401  # behind the API key
        stats = c.get("/v1/monitoring/cds-feedback", headers={"X-API-Key": "mon-key"}).json()
        assert stats["model_id"] == scorer.model_id
        b = stats["bands"][band]
        assert (b["cards_issued"], b["accepted"], b["overridden"], b["override_rate"]) == (3, 0, 2, 1.0)
        assert b["override_rate_ci95"] == pytest.approx(list(wilson(2, 2)))
        assert stats["feedback_for_unknown_cards"] == {"accepted": 0, "overridden": 1}
        metrics = c.get("/metrics").text
        assert f'lbp_cds_override_rate{{band="{band}"}} 1.0' in metrics
        assert f'lbp_cds_cards_issued_total{{band="{band}"}} 3' in metrics
    # durable: a new store on the same URL sees everything; cards of another model are not counted
    store = FeedbackStore(url)
    assert store.override_rates((0.0, 5.0, 10.0), scorer.model_id)["bands"][band]["cards_issued"] == 3
    store.record_card(str(uuid.uuid4()), "lbp-exercise-benefit", "older-model", band, None, 7.0)
    assert store.override_rates((0.0, 5.0, 10.0), scorer.model_id)["bands"][band]["cards_issued"] == 3
    assert store.override_rates((0.0, 5.0, 10.0))["bands"][band]["cards_issued"] == 4


@pytest.mark.parametrize("item, where", [
    ({"card": "not-a-uuid", "outcome": "accepted", "outcomeTimestamp": "2026-01-05T10:11:12Z"}, "card"),
    ({"card": str(uuid.uuid4()), "outcome": "ignored", "outcomeTimestamp": "2026-01-05T10:11:12Z"}, "outcome"),
    ({"card": str(uuid.uuid4()), "outcome": "accepted"}, "outcomeTimestamp"),
    ({"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-01-05T10:11:12Z",
      "acceptedSuggestions": [{"id": "x"}]}, "acceptedSuggestions"),
])
def test_invalid_feedback_is_422(client, key, item, where):
    r = feedback(client, key, [item])
    assert r.status_code == 422 and where in r.text


def test_feedback_needs_a_token_for_the_feedback_endpoint(client, key):
    path = "/cds-services/lbp-exercise-benefit/feedback"
    item = {"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "2026-01-05T10:11:12Z"}
    r = client.post(path, json={"feedback": [item]}, headers=auth(key, "/cds-services/lbp-exercise-benefit"))
    assert r.status_code == 401 and "aud" in r.json()["detail"]
    assert feedback(client, key, [item], service="nope").status_code == 404


def test_a_token_without_kid_is_refused(client, key):
    now = int(time.time())
    tok = jwt.encode({"iss": ISS, "aud": BASE + SERVICE, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
                     key[0], algorithm="ES384")
    r = client.post(SERVICE, json={"hook": "patient-view", "hookInstance": "x", "context": {"patientId": PID}},
                    headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401 and "kid" in r.json()["detail"]


# ----------------------------------------------------------------------------- configuration
def test_bad_band_edges_stop_the_app_with_the_setting_named(scorer, key, db_url):
    from predict.errors import LbpError
    with pytest.raises(LbpError, match="LBP_CDS_BAND_EDGES=5,5: band edges must be strictly increasing"):
        make_client(scorer, key, db_url, cds_band_edges="5,5")


def test_startup_log_summarises_issuers_keys_and_codes(scorer, key, db_url, caplog):
    caplog.set_level(logging.INFO, logger="lbp_benefit.serving")
    with make_client(scorer, key, db_url):
        pass
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("CDS Hooks configuration"))
    assert ISS in line and "kid (any) [ES384]" in line and "urn:lbp-benefit:cds|rmdq-0-24" in line
    assert "body sites: low_back (2 codes)" in line and "feedback database: sqlite:///" in line


def cli(main, args) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_check_config_prints_what_was_loaded_and_every_problem(key, tmp_path, monkeypatch, capsys):
    from lbp_benefit.cli import main
    site = tmp_path / "site.yaml"
    site.write_text("observations:\n  - {id: edu, feature: education, label: Education, kind: coded, codes: "
                    "[{system: 'https://ehr.example.org/codes', code: EDU, source: '[L] site'}], answers: "
                    "[{system: 'https://ehr.example.org/codes', code: HIGH, value: 1, source: '[L] site'}]}\n")
    monkeypatch.setenv("LBP_CDS_TRUSTED_ISSUERS", str(key[1]))
    monkeypatch.setenv("LBP_CDS_CODES", str(site))
    monkeypatch.setenv("LBP_CDS_FEEDBACK_DB", f"sqlite:///{tmp_path / 'fb.sqlite'}")
    monkeypatch.delenv("LBP_CDS_BASE_URL", raising=False)
    out = capsys.readouterr().out if cli(main, ["cds", "check-config"]) == 0 else pytest.fail(capsys.readouterr().out)
    assert ISS in out and "https://ehr.example.org/codes|EDU → education (site)" in out
    assert "warning: LBP_CDS_BASE_URL is not set" in out and "a PEM key without a pinned kid" in out
    assert cli(main, ["cds", "check-config", "--model", str(small_model().artifact)]) == 0
    out = capsys.readouterr().out
    assert "mapped from FHIR" in out and "warning: model inputs with no FHIR mapping" in out
    assert "registry inputs the model does not have (read, then not used): education" in out
    monkeypatch.setenv("LBP_CDS_COMPARATOR", "surgery")
    assert cli(main, ["cds", "check-config", "--model", str(small_model().artifact)]) == 1
    assert "error: LBP_CDS_COMPARATOR=surgery is not one of the model's comparators" in capsys.readouterr().out
    monkeypatch.delenv("LBP_CDS_COMPARATOR")
    monkeypatch.delenv("LBP_CDS_TRUSTED_ISSUERS")
    site.write_text("observations:\n  - {id: bad, feature: x, kind: nope, codes: []}\n")
    assert cli(main, ["cds", "check-config"]) == 1
    out = capsys.readouterr().out
    assert "error: LBP_CDS_TRUSTED_ISSUERS is not set" in out and "error: CDS code registry [observations] bad" in out
    monkeypatch.setenv("LBP_CDS_BAND_EDGES", "5,zero")
    monkeypatch.setenv("LBP_CDS_FHIR_TIMEOUT_S", "-1")
    assert cli(main, ["cds", "check-config"]) == 1
    out = capsys.readouterr().out
    assert "error: LBP_CDS_BAND_EDGES:" in out and "error: LBP_CDS_FHIR_TIMEOUT_S:" in out


def test_cards_are_served_when_the_feedback_database_is_down(scorer, key, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    with make_client(scorer, key, f"sqlite:///{blocker / 'fb.sqlite'}") as c:
        (card,) = post(c, key, complete_prefetch(today(), PID)).json()["cards"]
        assert card["summary"].startswith("Exercise vs usual care")
        item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-01-05T10:11:12Z"}
        assert feedback(c, key, [item]).status_code == 503
        assert c.get("/v1/monitoring/cds-feedback", headers={"X-API-Key": "mon-key"}).status_code == 503
        assert c.get("/metrics").status_code == 200
    assert any("not recorded" in r.getMessage() for r in caplog.records)
