"""The HTTP scoring service (serving/), tested against a small double of predict.Scorer."""
from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from predict.errors import LbpError, Problem, ValidationFailed
from predict.schema import CovariateSpec, FeatureSchema
from serving.app import create_app
from serving.interface import ScorerLike, check_scorer
from serving.logs import JsonFormatter
from serving.schemas import SYNTHETIC_WARNING
from serving.settings import ServingSettings

LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)


class DoubleScorer:
    """A test double satisfying serving.interface.ScorerLike; records its calls."""

    def __init__(self, *, synthetic: bool = True, covariates=None, fail: Exception | None = None, result=None):
        self.schema = FeatureSchema(tuple(covariates) if covariates is not None else (
            CovariateSpec("age", "continuous", "Age", "years", (18.0, 100.0)),
            CovariateSpec("female", "binary", "Female sex", reference="0 = male"),
            CovariateSpec("bmi", "continuous", "Body mass index", "kg/m2", (12.0, 70.0)),
            CovariateSpec("pain_site", "categorical", "Pain site", categories=("back_only", "back_and_leg"),
                          reference="back_only"),
        ))
        self.baselines = ["baseline_pain", "baseline_function"]
        self.comparators = ["no_treatment", "usual_care", "other_conservative"]
        self.outcomes = ["pain", "function", "global_recovery"]
        self.manifest = {"model_id": "double-1", "schema_version": "1.0", "created": "2024-01-01T00:00:00Z",
                         "package_version": "0.1.0", "synthetic": synthetic}
        self.card_markdown = "# Model card: double-1\n\nNot for clinical use.\n"
        self.card = {"model_id": "double-1", "intended_use": "tests"}
        self.calls: list[tuple] = []
        self.fail = fail
        self.result = result

    def score(self, patients, comparator, outcomes=None):
        self.calls.append(([dict(p) for p in patients], comparator, outcomes))
        if self.fail is not None and len(self.calls) > 2:  # the first calls: the OpenAPI example, the warm-up
            raise self.fail
        if self.result is not None:
            return [self.result for _ in patients]
        out = []
        for p in patients:
            est = 0.1 * p["baseline_pain"]
            out.append({
                "outcomes": {o: {"benefit": {"estimate": est, "ci": [est - 1, est + 1]}}
                             for o in (outcomes or self.outcomes)},
                "top_factors": [], "missing": [{"name": n, "handled_as": "imputed"}
                                               for n in self.schema.names if n not in p],
                "warnings": [],
            })
        return out


def settings(**kw) -> ServingSettings:
    """Settings that ignore the developer's environment."""
    base = dict(model_path=None, api_keys="", allow_unauthenticated=False, cors_origins="",
                max_body_bytes=1024 * 1024, max_batch=1000, metrics_require_auth=False, warmup=True, docs=True)
    base.update(kw)
    return ServingSettings(**base)


def client(scorer=None, client_addr=LOOPBACK, **kw) -> TestClient:
    return TestClient(create_app(scorer or DoubleScorer(), settings(**kw)), client=client_addr)


def body(**patient):
    p = {"baseline_pain": 62, "baseline_function": 41}
    p.update(patient)
    return {"patient": p, "comparator": "usual_care"}


def bad_fields(r) -> set[str]:
    assert r.status_code == 422, r.text
    return {d["field"] for d in r.json()["detail"]}


# ---------------------------------------------------------------- happy paths

def test_double_satisfies_the_protocol():
    d = DoubleScorer()
    assert isinstance(d, ScorerLike)
    assert check_scorer(d) is d


def test_score_one_patient_passes_only_given_values_and_returns_the_result():
    d = DoubleScorer(synthetic=False)
    with client(d) as c:
        r = c.post("/v1/score", json=body(age=47, female=1, bmi=None, pain_site="back_and_leg"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_id"] == "double-1" and out["comparator"] == "usual_care"
    assert "synthetic_data_warning" not in out
    assert out["result"]["outcomes"]["pain"]["benefit"]["estimate"] == pytest.approx(6.2)
    patients, comparator, outcomes = d.calls[-1]
    # absent and null are both "missing": the scorer sees only the values given
    assert patients == [{"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47.0, "female": 1,
                         "pain_site": "back_and_leg"}]
    assert comparator == "usual_care" and outcomes is None
    assert r.headers["cache-control"] == "no-store" and r.headers["x-request-id"]


def test_baselines_only_and_outcome_subset():
    d = DoubleScorer()
    with client(d) as c:
        r = c.post("/v1/score", json={**body(), "outcomes": ["pain"], "comparator": "no_treatment"})
    assert r.status_code == 200, r.text
    assert list(r.json()["result"]["outcomes"]) == ["pain"]
    assert d.calls[-1][1:] == ("no_treatment", ["pain"])


def test_batch_keeps_order():
    d = DoubleScorer()
    pts = [{"baseline_pain": v, "baseline_function": 30} for v in (10, 20, 30)]
    with client(d) as c:
        r = c.post("/v1/score/batch", json={"patients": pts, "comparator": "other_conservative"})
    assert r.status_code == 200, r.text
    ests = [x["outcomes"]["pain"]["benefit"]["estimate"] for x in r.json()["results"]]
    assert ests == pytest.approx([1.0, 2.0, 3.0])
    assert len(d.calls[-1][0]) == 3


def test_request_id_is_echoed_when_safe_and_replaced_when_not():
    with client() as c:
        assert c.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
        rid = c.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)


# ---------------------------------------------------------------- 422: each bad field named

@pytest.mark.parametrize("patient, field", [
    ({"age": "62"}, "patient.age"),                   # a string for a number: refused, not coerced
    ({"age": True}, "patient.age"),                   # a boolean for a number
    ({"age": 101}, "patient.age"),                    # out of the plausible range
    ({"age": 17.9}, "patient.age"),
    ({"bmi": 80}, "patient.bmi"),
    ({"female": True}, "patient.female"),             # binary is 0/1 only
    ({"female": 1.0}, "patient.female"),
    ({"female": "yes"}, "patient.female"),
    ({"female": 2}, "patient.female"),
    ({"pain_site": "leg"}, "patient.pain_site"),      # not a category
    ({"pain_site": 1}, "patient.pain_site"),
    ({"shoe_size": 44}, "patient.shoe_size"),         # unknown field
    ({"baseline_pain": 100.5}, "patient.baseline_pain"),
    ({"baseline_pain": -1}, "patient.baseline_pain"),
    ({"baseline_pain": None}, "patient.baseline_pain"),
])
def test_each_bad_field_is_named(patient, field):
    with client() as c:
        r = c.post("/v1/score", json=body(**patient))
    assert bad_fields(r) == {field}
    item = r.json()["detail"][0]
    assert item["loc"] == ["body"] + field.split(".") and item["msg"]
    assert field in r.json()["message"]
    assert "input" not in item  # values are not echoed back


def test_all_bad_fields_are_named_at_once():
    b = {"patient": {"baseline_pain": "62", "age": 101, "female": True, "shoe_size": 44},
         "comparator": "acupuncture", "outcomes": ["pain", "pain"], "extra": 1}
    with client() as c:
        r = c.post("/v1/score", json=b)
    assert bad_fields(r) == {"patient.baseline_pain", "patient.baseline_function", "patient.age",
                             "patient.female", "patient.shoe_size", "comparator", "outcomes", "extra"}
    by_field = {d["field"]: d for d in r.json()["detail"]}
    # the requirement of the outcomes requested (here every outcome: the double requires every baseline)
    assert by_field["patient.baseline_function"]["msg"].startswith("required field is missing: needed to predict")
    assert by_field["patient.baseline_function"]["type"] == "missing"
    assert "18 to 100 years" in by_field["patient.age"]["expected"]
    assert "usual_care" in by_field["comparator"]["msg"]
    assert by_field["patient.shoe_size"]["type"] == "extra_forbidden"


def test_missing_baseline_and_missing_comparator():
    with client() as c:
        r = c.post("/v1/score", json={"patient": {"baseline_pain": 50}})
    assert bad_fields(r) == {"patient.baseline_function", "comparator"}


def test_nan_and_infinity_are_refused():
    raw = '{"patient": {"baseline_pain": NaN, "baseline_function": 40, "age": Infinity}, "comparator": "usual_care"}'
    with client() as c:
        r = c.post("/v1/score", content=raw, headers={"Content-Type": "application/json"})
    assert bad_fields(r) == {"patient.baseline_pain", "patient.age"}


def test_malformed_json_and_wrong_shapes():
    with client() as c:
        r = c.post("/v1/score", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
        assert bad_fields(c.post("/v1/score", json={"patient": [1, 2], "comparator": "usual_care"})) == {"patient"}
        assert bad_fields(c.post("/v1/score", json={**body(), "outcomes": ["pain", "sleep"]})) == {"outcomes[1]"}


@given(x=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_http_validation_agrees_with_the_feature_schema(x):
    spec = _SHARED_DOUBLE.schema["bmi"]
    r = _SHARED_CLIENT.post("/v1/score", json=body(bmi=x))
    assert (r.status_code == 200) == (spec.check_value(x) is None), (x, r.text)


_SHARED_DOUBLE = DoubleScorer()
_SHARED_CLIENT = TestClient(create_app(_SHARED_DOUBLE, settings(warmup=False)), client=LOOPBACK)


# ---------------------------------------------------------------- batch limits

def test_batch_over_the_limit_is_refused_clearly():
    pts = [{"baseline_pain": 50, "baseline_function": 50}] * 4
    with client(max_batch=3) as c:
        r = c.post("/v1/score/batch", json={"patients": pts, "comparator": "usual_care"})
        assert bad_fields(r) == {"patients"}
        assert "at most 3 patients" in r.json()["detail"][0]["msg"]
        assert c.post("/v1/score/batch", json={"patients": pts[:3], "comparator": "usual_care"}).status_code == 200
        assert bad_fields(c.post("/v1/score/batch", json={"patients": [], "comparator": "usual_care"})) == {"patients"}


def test_batch_errors_name_the_patient_index():
    pts = [{"baseline_pain": 50, "baseline_function": 50},
           {"baseline_pain": 50, "baseline_function": 50, "age": 300},
           {"baseline_pain": 50},
           {"baseline_pain": 50, "baseline_function": 50, "shoe_size": 1}]
    with client() as c:
        r = c.post("/v1/score/batch", json={"patients": pts, "comparator": "usual_care"})
    assert r.status_code == 200, r.text  # only those patients are left out (tests/test_serving_batch_rows.py)
    ns = r.json()["not_scored"]
    assert {d["field"] for d in ns["detail"]} == {"patients[1].age", "patients[2].baseline_function",
                                                  "patients[3].shoe_size"}
    assert sorted(d["patient_index"] for d in ns["detail"]) == [1, 2, 3]
    assert [x is None for x in r.json()["results"]] == [False, True, True, True]


# ---------------------------------------------------------------- body size

def test_oversize_body_is_refused_with_413():
    pad = "x" * 2000
    with client(max_body_bytes=1000) as c:
        r = c.post("/v1/score", content=json.dumps({**body(), "pad": pad}), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
        assert c.post("/v1/score", json=body()).status_code == 200  # small bodies still fine


def test_oversize_chunked_body_without_content_length_is_refused():
    def chunks():
        yield b'{"patient": {"baseline_pain": 50, "baseline_function": 50}, "comparator": "usual_care", "pad": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}'

    with client(max_body_bytes=1000) as c:
        r = c.post("/v1/score", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


# ---------------------------------------------------------------- auth

def test_api_keys_when_configured():
    with client(api_keys="k-one, k-two", client_addr=REMOTE) as c:
        assert c.post("/v1/score", json=body()).status_code == 401
        assert c.get("/v1/model").status_code == 401
        r = c.post("/v1/score", json=body(), headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers
        assert c.post("/v1/score", json=body(), headers={"X-API-Key": "k-two"}).status_code == 200
        assert c.get("/v1/model", headers={"Authorization": "Bearer k-one"}).status_code == 200
        assert c.get("/v1/model/card", headers={"Authorization": "Bearer k-bad"}).status_code == 401
        # operations endpoints stay open
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert c.get("/metrics").status_code == 200


def test_auth_runs_before_validation_and_metrics_can_require_it():
    with client(api_keys="k", metrics_require_auth=True) as c:
        assert c.post("/v1/score", json={"garbage": 1}).status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": "k"}).status_code == 200


def test_without_keys_only_loopback_clients_are_served_unless_allowed():
    with client() as c:
        assert c.post("/v1/score", json=body()).status_code == 200
    with client(client_addr=REMOTE) as c:
        r = c.post("/v1/score", json=body())
        assert r.status_code == 403 and "loopback" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200
    with client(client_addr=REMOTE, allow_unauthenticated=True) as c:
        assert c.post("/v1/score", json=body()).status_code == 200


def test_openapi_declares_security_only_when_keys_are_set():
    with client() as c:
        assert "securitySchemes" not in c.get("/openapi.json").json().get("components", {})
    with client(api_keys="k") as c:
        schemes = c.get("/openapi.json").json()["components"]["securitySchemes"]
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schemes)


# ---------------------------------------------------------------- CORS

def test_cors_off_by_default_and_configurable():
    pre = {"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type,x-api-key"}
    with client() as c:
        r = c.post("/v1/score", json=body(), headers={"Origin": "https://app.example.org"})
        assert "access-control-allow-origin" not in r.headers
    with client(cors_origins="https://app.example.org, https://other.example.org") as c:
        r = c.options("/v1/score", headers=pre)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example.org"
        r = c.post("/v1/score", json=body(), headers={"Origin": "https://app.example.org"})
        assert r.headers["access-control-allow-origin"] == "https://app.example.org"
        r = c.post("/v1/score", json=body(), headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------- logs carry no patient data

class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.fmt = JsonFormatter()

    def emit(self, record):
        if record.name.startswith(("httpx", "httpcore")):  # the test's own HTTP client, not the server
            return
        self.records.append(record)
        self.lines.append(self.fmt.format(record))


def test_logs_are_json_and_contain_no_patient_data(caplog):
    secrets = ["47.123", "61.987", "41.555", "147.321", "SHOE-SIZE-SECRET", "88.777", "QUERY-SECRET"]
    d = DoubleScorer()
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    old = root.level
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        with client(d) as c:
            ok = c.post("/v1/score", json=body(age=47.123, baseline_pain=61.987, baseline_function=41.555))
            assert ok.status_code == 200
            bad = c.post("/v1/score", json=body(age=147.321, shoe_size="SHOE-SIZE-SECRET"))
            assert bad.status_code == 422
            bad = c.post("/v1/score/batch", json={"patients": [{"baseline_pain": "61.987"}], "comparator": "x"})
            assert bad.status_code == 422
            assert c.get("/v1/model?patient=QUERY-SECRET").status_code == 200
            d.fail = RuntimeError("model blew up on age 88.777 baseline 61.987")
            err = c.post("/v1/score", json=body(age=88.777))
            assert err.status_code == 500 and err.json()["request_id"] == err.headers["x-request-id"]
            assert "88.777" not in err.text
    finally:
        root.removeHandler(collect)
        root.setLevel(old)
    server_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    everything = "\n".join(collect.lines + [r.getMessage() for r in server_records]
                           + [repr(r.__dict__) for r in collect.records])
    for s in secrets:
        assert s not in everything, f"{s} leaked into the logs"
    access = [json.loads(x) for x in collect.lines if json.loads(x)["logger"] == "lbp_benefit.serving.access"]
    assert {(a["route"], a["status"]) for a in access} >= {("/v1/score", 200), ("/v1/score", 422),
                                                           ("/v1/score/batch", 422), ("/v1/model", 200),
                                                           ("/v1/score", 500)}
    for a in access:
        assert a["model_id"] == "double-1" and a["request_id"] and a["method"] in ("GET", "POST")
        assert isinstance(a["duration_ms"], float)
    failure = [json.loads(x) for x in collect.lines if json.loads(x)["event"] == "scoring failed"]
    assert failure and failure[0]["error_type"] == "RuntimeError"


# ---------------------------------------------------------------- metrics

def samples(text: str) -> dict:
    """Prometheus exposition text -> {(sample name, sorted label pairs): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
            for fam in text_string_to_metric_families(text) for smp in fam.samples}


def test_metrics_exposition():
    with client() as c:
        c.post("/v1/score", json=body())
        c.post("/v1/score", json=body(age=500))
        c.post("/v1/score/batch", json={"patients": [body()["patient"]] * 3, "comparator": "no_treatment"})
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    got = samples(text)
    assert got["lbp_http_requests_total", (("method", "POST"), ("route", "/v1/score"), ("status", "200"))] == 1
    assert got["lbp_http_requests_total", (("method", "POST"), ("route", "/v1/score"), ("status", "422"))] == 1
    assert got["lbp_http_request_duration_seconds_bucket",
               (("le", "+Inf"), ("method", "POST"), ("route", "/v1/score"), ("status", "200"))] == 1
    assert got["lbp_http_request_duration_seconds_count",
               (("method", "POST"), ("route", "/v1/score/batch"), ("status", "200"))] == 1
    assert got["lbp_patients_scored_total", (("comparator", "no_treatment"), ("endpoint", "/v1/score/batch"))] == 3
    assert got["lbp_score_requests_total", (("endpoint", "/v1/score"), ("result", "invalid"))] == 1
    assert got["lbp_score_batch_size_sum", ()] == 3
    assert got["lbp_model_ready", ()] == 1
    assert got["lbp_model_info", (("model_id", "double-1"), ("schema_version", "1.0"), ("synthetic", "true"))] == 1
    # every sample line is "name{labels} number"
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? [-+0-9.eEInf]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line


# ---------------------------------------------------------------- readiness and startup

def test_readiness_follows_the_lifespan():
    app = create_app(DoubleScorer(), settings())
    c = TestClient(app, client=LOOPBACK)
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").status_code == 503  # not started: no warm-up yet
    with c:
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready", "model_id": "double-1"}
    assert app.state.ready is False


def test_startup_fails_when_warm_up_fails():
    class Broken(DoubleScorer):
        def score(self, patients, comparator, outcomes=None):
            raise RuntimeError("cannot score")

    app = create_app(Broken(), settings())
    with pytest.raises(RuntimeError):
        with TestClient(app, client=LOOPBACK):
            pass


def test_create_app_raises_on_loader_failure_and_on_no_model(tmp_path):
    from predict.artifact import ArtifactError

    def tampered(path):
        raise ArtifactError(f"{path}: file 'model.json' does not match its SHA-256 in the manifest")

    with pytest.raises(ArtifactError, match="SHA-256"):
        create_app(settings=settings(model_path=tmp_path), loader=tampered)
    with pytest.raises(ArtifactError):
        create_app(model_path=tmp_path, settings=settings(), loader=tampered)
    with pytest.raises(LbpError, match="no model"):
        create_app(settings=settings())
    app = create_app(settings=settings(), model_path=tmp_path, loader=lambda p: DoubleScorer())
    assert app.state.model_id == "double-1"


def test_a_scorer_lacking_the_interface_is_refused():
    d = DoubleScorer()
    d.comparators = []
    d.manifest = {}
    with pytest.raises(LbpError, match="comparators.*model_id"):
        create_app(d, settings())
    d = DoubleScorer()
    d.baselines = ["age"]
    with pytest.raises(LbpError, match="also declared as covariates"):
        create_app(d, settings())


# ---------------------------------------------------------------- model routes, synthetic warning

def test_model_routes_and_synthetic_warning():
    with client(DoubleScorer(synthetic=True)) as c:
        info = c.get("/v1/model").json()
        assert info["synthetic"] is True and info["synthetic_data_warning"] == SYNTHETIC_WARNING
        assert info["manifest"]["model_id"] == "double-1" and info["card"]["intended_use"] == "tests"
        assert [x["name"] for x in info["covariates"]] == ["age", "female", "bmi", "pain_site"]
        assert info["comparators"] == ["no_treatment", "usual_care", "other_conservative"]
        assert info["limits"] == {"max_batch": 1000, "max_body_bytes": 1048576}
        card = c.get("/v1/model/card")
        assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
        assert card.text.startswith("# Model card")
        assert c.post("/v1/score", json=body()).json()["synthetic_data_warning"] == SYNTHETIC_WARNING
        batch = c.post("/v1/score/batch", json={"patients": [body()["patient"]], "comparator": "usual_care"})
        assert batch.json()["synthetic_data_warning"] == SYNTHETIC_WARNING
    with client(DoubleScorer(synthetic=False)) as c:
        info = c.get("/v1/model").json()
        assert info["synthetic"] is False and info["synthetic_data_warning"] is None


# ---------------------------------------------------------------- the scorer's own refusals and odd results

def test_scorer_refusal_is_a_422_naming_the_patient():
    fail = ValidationFailed([Problem("implausible", "baseline_function is implausible with baseline_pain",
                                     column="baseline_function", row=0, scope="participant")], what="patient")
    with client(DoubleScorer(fail=fail)) as c:
        r = c.post("/v1/score", json=body())
    assert r.status_code == 422
    assert r.json()["detail"][0] == {"loc": ["body", "baseline_function"], "field": "baseline_function",
                                     "type": "implausible", "msg": "baseline_function is implausible with baseline_pain",
                                     "patient_index": 0}


def test_numpy_and_nan_results_become_plain_json():
    res = {"outcomes": {"pain": {"benefit": {"estimate": np.float64(3.5), "ci": np.array([1.0, np.nan])},
                                 "clears_smallest_worthwhile": np.bool_(True)}}, "n": np.int64(3)}
    with client(DoubleScorer(result=res)) as c:
        r = c.post("/v1/score", json=body())
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"outcomes": {"pain": {"benefit": {"estimate": 3.5, "ci": [1.0, None]},
                                                        "clears_smallest_worthwhile": True}}, "n": 3}


def test_covariates_named_like_pydantic_internals_work():
    covs = (CovariateSpec("schema", "binary", "A"), CovariateSpec("model_config", "continuous", "B", None, (0.0, 1.0)),
            CovariateSpec("_hidden", "categorical", "C", categories=("a", "b")), CovariateSpec("json", "binary"))
    d = DoubleScorer(covariates=covs)
    with client(d) as c:
        r = c.post("/v1/score", json=body(schema=1, model_config=0.5, _hidden="b", json=0))
        assert r.status_code == 200, r.text
        assert d.calls[-1][0][0] == {"baseline_pain": 62.0, "baseline_function": 41.0, "schema": 1,
                                     "model_config": 0.5, "_hidden": "b", "json": 0}
        assert bad_fields(c.post("/v1/score", json=body(model_config=2))) == {"patient.model_config"}


# ---------------------------------------------------------------- OpenAPI

def test_openapi_shows_units_ranges_enums_and_examples():
    with client() as c:
        doc = c.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    props = schemas["Patient"]["properties"]
    age = props["age"]
    num = next(a for a in age["anyOf"] if a.get("type") == "number")
    assert (num["minimum"], num["maximum"]) == (18, 100)
    assert age["x-unit"] == "years" and "years" in age["description"] and age["title"] == "Age"
    assert age["examples"] and 18 <= age["examples"][0] <= 100
    female = next(a for a in props["female"]["anyOf"] if a.get("type") == "integer")
    assert female["enum"] == [0, 1] and props["female"]["x-reference"] == "0 = male"
    site = next(a for a in props["pain_site"]["anyOf"] if a.get("type") == "string")
    assert site["enum"] == ["back_only", "back_and_leg"]
    bp = next(a for a in props["baseline_pain"]["anyOf"] if a.get("type") == "number")
    assert bp["minimum"] == 0 and bp["maximum"] == 100
    # baselines are optional fields; which outcomes need each is said in words and in x-needed-by
    assert "required" not in schemas["Patient"]
    assert props["baseline_pain"]["x-needed-by"] == ["pain", "function", "global_recovery"]
    assert "required to predict pain, function, global_recovery" in props["baseline_pain"]["description"]
    assert schemas["Patient"]["additionalProperties"] is False
    req = schemas["ScoreRequest"]
    assert req["properties"]["comparator"]["enum"] == ["no_treatment", "usual_care", "other_conservative"]
    assert req["examples"][0]["patient"]["baseline_pain"] == 62
    assert schemas["BatchScoreRequest"]["properties"]["patients"]["maxItems"] == 1000
    ex = schemas["ScoreResponse"]["examples"][0]  # the double's real answer to the request example
    assert ex["result"] == DoubleScorer().score([req["examples"][0]["patient"]], "usual_care")[0]
    assert ex["synthetic_data_warning"] == SYNTHETIC_WARNING
    paths = doc["paths"]
    assert {"/v1/score", "/v1/score/batch", "/v1/model", "/v1/model/card", "/healthz", "/readyz",
            "/metrics"} <= set(paths)
    assert "example" in json.dumps(paths["/v1/score"]["post"]["responses"]["422"])


def test_docs_can_be_turned_off():
    with client(docs=False) as c:
        assert c.get("/openapi.json").status_code == 404 and c.get("/docs").status_code == 404


def test_unknown_routes_are_logged_as_unmatched():
    with client() as c:
        assert c.get("/v1/patients/12345").status_code == 404
        text = c.get("/metrics").text
    assert 'route="unmatched",status="404"' in text and "12345" not in text


def test_public_model_card_setting_opens_only_the_card():
    from serving.app import create_app as _create
    from serving.settings import ServingSettings as _S

    s = _S(api_keys="k1", public_model_card=True, warmup=False)
    with TestClient(_create(DoubleScorer(), s)) as c:
        assert c.get("/v1/model/card").status_code == 200
        assert c.get("/v1/model").status_code == 401
        assert c.post("/v1/score", json={}).status_code == 401
    with TestClient(_create(DoubleScorer(), _S(api_keys="k1", warmup=False))) as c:
        assert c.get("/v1/model/card").status_code == 401


def test_calculator_scores_through_the_shared_service_metrics():
    with client() as c:
        assert c.post("/calculator/score", json=body()).status_code == 200
        assert c.post("/calculator/score", json=body(age=500)).status_code == 422
        got = samples(c.get("/metrics").text)
    assert got["lbp_score_requests_total", (("endpoint", "/calculator/score"), ("result", "ok"))] == 1
    assert got["lbp_score_requests_total", (("endpoint", "/calculator/score"), ("result", "invalid"))] == 1
    assert got["lbp_patients_scored_total", (("comparator", "usual_care"), ("endpoint", "/calculator/score"))] == 1


def test_serving_has_no_cross_module_private_imports():
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    offenders = []
    for path in (root / "serving").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                offenders += [f"{path.relative_to(root)}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []
