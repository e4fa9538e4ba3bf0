"""Fuzzing the CDS Hooks routes: schemathesis on every CDS operation of the OpenAPI document (with a
valid client JWT per call, positive and negative data), and hypothesis mutations of a complete
FHIR prefetch (any JSON value anywhere in the resources). No 5xx, ever."""
from __future__ import annotations

import copy
import time
import uuid
from datetime import datetime, timezone

import jwt
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from predict import Scorer
from serving.app import create_app
from serving.settings import ServingSettings
from tests._small_model import small_model
from tests.test_cds_fhir_map import complete_prefetch
from tests.test_cds_service import BASE, ISS, PID, key  # noqa: F401 - key is a fixture

SERVICE = "lbp-exercise-benefit"


@pytest.fixture(scope="module")
def app(key):
    settings = ServingSettings(model_path=None, api_keys="fuzz-key", warmup=False, cds_trusted_issuers=key[1],
                               cds_base_url=BASE, cds_feedback_db="sqlite://")
    return create_app(Scorer.load(small_model().artifact), settings)


def bearer(key, path: str) -> dict:
    now = int(time.time())
    tok = jwt.encode({"iss": ISS, "aud": BASE + path, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex},
                     key[0], algorithm="ES384", headers={"kid": "k1"})
    return {"Authorization": f"Bearer {tok}"}


def test_schemathesis_on_the_cds_routes_finds_no_server_error(app, key):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations() if r.ok().path.startswith("/cds-services")]
    assert {f"{o.method.upper()} {o.path}" for o in ops} == {
        "GET /cds-services", "POST /cds-services/{service_id}", "POST /cds-services/{service_id}/feedback"}
    seen = []
    for op, mode in [(o, m) for o in ops for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            if mode == GenerationMode.POSITIVE and "service_id" in (case.path_parameters or {}):
                case.path_parameters = {"service_id": SERVICE}  # reach the service, not only its 404
            response = case.call(headers=bearer(key, case.formatted_path))
            seen.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                                 response.text[:300])
            case.validate_response(response, checks=(not_a_server_error,))

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (discovery has no parameters)
            assert mode == GenerationMode.NEGATIVE
    assert 200 in seen and 422 in seen


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=6)


def _paths(obj, prefix=()):
    """Every (container path, key) in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix, k
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix, i
            yield from _paths(v, prefix + (i,))


def test_mutated_fhir_prefetch_never_gives_a_server_error(app, key):
    today = datetime.now(timezone.utc).date()
    base = complete_prefetch(today, PID)
    places = list(_paths(base))
    path = f"/cds-services/{SERVICE}"
    with TestClient(app, client=("127.0.0.1", 5000)) as c:
        @given(st.lists(st.tuples(st.sampled_from(places), JSON), min_size=1, max_size=4))
        @settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(mutations):
            pre = copy.deepcopy(base)
            for (container, k), value in mutations:
                target = pre
                try:
                    for step in container:
                        target = target[step]
                    target[k] = value
                except (KeyError, IndexError, TypeError):
                    continue  # an earlier mutation replaced the container
            body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "context": {"patientId": PID},
                    "prefetch": pre}
            r = c.post(path, json=body, headers=bearer(key, path))
            assert r.status_code in (200, 412, 422), (r.status_code, r.text[:300])

        run()
