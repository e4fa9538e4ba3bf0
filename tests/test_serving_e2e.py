"""The real model behind the service: every route over HTTP from a uvicorn server on 127.0.0.1,
TestClient checks of auth and scorer refusals, and bounded schemathesis fuzzing of the OpenAPI
document (zero server errors)."""
from __future__ import annotations


import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from predict import Scorer
from serving.app import create_app
from serving.settings import ServingSettings
from tests._small_model import small_model
from tests._uvicorn import serve_in_thread

COMP = "usual_care"
LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load(small_model().artifact)


@pytest.fixture(scope="module")
def server(scorer):
    app = create_app(settings=ServingSettings(model_path=small_model().artifact, warmup=True))
    with serve_in_thread(app) as url:
        yield url


def test_health_and_readiness(server, scorer):
    with httpx.Client(base_url=server) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["model_id"] == scorer.model_id


def test_score_one_patient_over_http(server, scorer):
    patient = scorer.example_patient()
    with httpx.Client(base_url=server) as c:
        r = c.post("/v1/score", json={"patient": patient, "comparator": COMP})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_id"] == scorer.model_id and body["comparator"] == COMP
    assert "synthetic" in body["synthetic_data_warning"]
    res = body["result"]
    assert set(res["scores"]) == set(scorer.output_columns())
    expect = scorer.score([patient], COMP)[0]
    assert res["scores"]["pain_short_benefit"] == pytest.approx(expect["scores"]["pain_short_benefit"])
    assert res["outcomes"]["pain__short"]["benefit"]["ci"] == pytest.approx(expect["outcomes"]["pain__short"]["benefit"]["ci"])
    assert res["top_factors"] and res["missing"] is not None and isinstance(res["warnings"], list)
    assert r.headers["cache-control"] == "no-store" and r.headers["x-request-id"]


def test_batch_and_outcome_subset_over_http(server, scorer):
    pts = [scorer.example_patient(), {"baseline_pain": 30.0, "baseline_function": 20.0}]
    with httpx.Client(base_url=server) as c:
        r = c.post("/v1/score/batch", json={"patients": pts, "comparator": COMP, "outcomes": ["global_recovery"]})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 2 and list(res[1]["outcomes"]) == ["global_recovery__moderate"]
    assert set(res[1]["scores"]) == {k for k in scorer.output_columns(["global_recovery"])}


def test_model_card_and_metrics_over_http(server, scorer):
    with httpx.Client(base_url=server) as c:
        m = c.get("/v1/model").json()
        card = c.get("/v1/model/card")
        metrics = c.get("/metrics").text
        spec = c.get("/openapi.json").json()
    assert m["model_id"] == scorer.model_id and m["synthetic"] is True
    assert m["comparators"] == scorer.comparators and m["baselines"] == scorer.baselines
    assert {c["name"] for c in m["covariates"]} == set(scorer.schema.names)
    assert m["manifest"]["content_sha256"] == scorer.manifest["content_sha256"]
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
    assert scorer.model_id in card.text
    assert "lbp_model_ready 1.0" in metrics
    age = spec["components"]["schemas"]["Patient"]["properties"]["age"]
    assert "x-unit" in str(age) or "years" in str(age)


@pytest.mark.parametrize("patch, field", [
    ({"age": 150}, "patient.age"),
    ({"shoe_size": 44}, "patient.shoe_size"),
    ({"baseline_pain": "62"}, "patient.baseline_pain"),
    ({"female": True}, "patient.female"),
])
def test_invalid_requests_over_http(server, scorer, patch, field):
    patient = {**scorer.example_patient(), **patch}
    with httpx.Client(base_url=server) as c:
        r = c.post("/v1/score", json={"patient": patient, "comparator": COMP})
    assert r.status_code == 422
    assert field in {d.get("field") for d in r.json()["detail"]}


def test_unknown_comparator_and_outcome_over_http(server, scorer):
    with httpx.Client(base_url=server) as c:
        r1 = c.post("/v1/score", json={"patient": scorer.example_patient(), "comparator": "surgery"})
        r2 = c.post("/v1/score", json={"patient": scorer.example_patient(), "comparator": COMP, "outcomes": ["mood"]})
        r3 = c.post("/v1/score/batch", json={"patients": [], "comparator": COMP})
        r4 = c.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"})
    assert r1.status_code == r2.status_code == r3.status_code == r4.status_code == 422


def test_api_key_required_when_configured(scorer):
    app = create_app(scorer, ServingSettings(api_keys="k-123", warmup=False))
    c = TestClient(app, client=("10.0.0.5", 1234))
    body = {"patient": scorer.example_patient(), "comparator": COMP}
    assert c.post("/v1/score", json=body).status_code == 401
    assert c.get("/v1/model").status_code == 401
    r = c.post("/v1/score", json=body, headers={"X-API-Key": "k-123"})
    assert r.status_code == 200 and r.json()["result"]["scores"]


def test_scorer_refusal_becomes_422_with_patient_index(scorer):
    """The HTTP schema and the scorer agree; if the scorer still refuses (here: a covariate the
    request model allowed but a stricter scorer refuses), never 500: in a batch only that patient is
    left unscored (named in not_scored), a single patient gets 422."""
    from predict.errors import Problem, ValidationFailed

    class Strict:
        def __init__(self, inner):
            self._s = inner
            for a in ("schema", "baselines", "comparators", "outcomes", "manifest", "card_markdown", "card"):
                setattr(self, a, getattr(inner, a))

        def score(self, patients, comparator, outcomes=None):
            if len(patients) > 1:
                raise ValidationFailed([Problem("too_many", "no", row=1, column="age", scope="participant")])
            return self._s.score(patients, comparator, outcomes)

    c = TestClient(create_app(Strict(scorer), ServingSettings(warmup=False)), client=LOOPBACK)
    r = c.post("/v1/score/batch", json={"patients": [scorer.example_patient()] * 2, "comparator": COMP})
    assert r.status_code == 200, r.text
    assert r.json()["results"][1] is None and r.json()["results"][0] is not None
    assert r.json()["not_scored"]["detail"][0]["patient_index"] == 1


# ----------------------------------------------------------------------------- schemathesis
import schemathesis  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(scorer):
    app = create_app(scorer, ServingSettings(api_keys="fuzz-key", warmup=False))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_openapi_fuzz_no_server_errors(api_schema):
    """Every operation of the OpenAPI document, a bounded number of generated cases each
    (positive and negative data), with a valid API key: no 5xx."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    ops = [r.ok() for r in api_schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in ops} >= {"POST /v1/score", "POST /v1/score/batch", "GET /v1/model"}
    seen = []
    for op, mode in [(o, m) for o in ops for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(headers={"X-API-Key": "fuzz-key"})
            seen.append((mode, response.status_code))
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
            case.validate_response(response, checks=(not_a_server_error,))

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (a GET without parameters)
            assert mode == GenerationMode.NEGATIVE
    codes = {c for _, c in seen}
    assert len(seen) >= len(ops) and 200 in codes and 422 in codes
