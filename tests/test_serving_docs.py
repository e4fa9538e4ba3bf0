"""The service's documented examples are real responses.

* docs/serving.md: the JSON blocks marked ``<!-- example: NAME -->`` are the answers of the small
  test model (tests/_small_model.py) to the requests shown next to them, numbers rounded to two
  decimals. ``LBP_UPDATE_DOCS=1 pytest tests/test_serving_docs.py`` rewrites them; otherwise a
  block that differs from what the service answers fails here.
* The OpenAPI document: the score and batch response examples equal /v1/score's and
  /v1/score/batch's answers to the request examples, and the 422 example equals the answer to
  the request it describes.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.routes.score import ERROR_RESPONSES
from serving.settings import ServingSettings
from tests._small_model import assert_nested_close, small_model

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
BLOCK = re.compile(r"(<!-- example: (?P<name>[\w-]+) -->\n```json\n)(?P<body>.*?)(\n```)", re.S)
LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture(scope="module")
def client():
    app = create_app(settings=ServingSettings(model_path=small_model().artifact, warmup=False))
    with TestClient(app, client=LOOPBACK) as c:
        yield c


def _rounded(value, nd: int = 2):
    if isinstance(value, float):
        return round(value, nd)
    if isinstance(value, dict):
        return {k: _rounded(v, nd) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, nd) for v in value]
    return value


def _curl_body(doc: str, name: str) -> dict:
    """The JSON body of the curl example marked ``<!-- request: NAME -->``."""
    m = re.search(r"<!-- request: " + re.escape(name) + r" -->\n```bash\n.*?-d '(?P<body>.*?)'\n```", doc, re.S)
    assert m, f"docs/serving.md has no request block {name}"
    return json.loads(m.group("body"))


def _examples(client, doc: str) -> dict[str, str]:
    score = client.post("/v1/score", json=_curl_body(doc, "score"))
    assert score.status_code == 200, score.text
    invalid = client.post("/v1/score/batch", json=_curl_body(doc, "batch-invalid"))
    assert invalid.status_code == 200, invalid.text
    partial = invalid.json()
    alone = client.post("/v1/score", json={"patient": _curl_body(doc, "batch-invalid")["patients"][0],
                                           "comparator": partial["comparator"]})
    assert partial["results"][0] == alone.json()["result"]  # the good patient: as scored alone
    shown = {k: v for k, v in partial.items() if k not in ("results", "not_scored")}
    shown["results"] = ["{... patient 0's result: the same as /v1/score gives for it alone ...}"] + partial["results"][1:]
    shown["not_scored"] = partial["not_scored"]
    lacking = client.post("/v1/score", json=_curl_body(doc, "missing-baseline"))
    assert lacking.status_code == 422, lacking.text
    return {"score-response": json.dumps(_rounded(score.json()), indent=2, ensure_ascii=False),
            "batch-invalid-response": json.dumps(shown, indent=2, ensure_ascii=False),
            "missing-baseline-response": json.dumps(lacking.json(), indent=2, ensure_ascii=False)}


def test_docs_examples_are_real_responses(client):
    doc = DOC.read_text("utf-8")
    want = _examples(client, doc)
    found = {m.group("name"): m.group("body") for m in BLOCK.finditer(doc)}
    assert set(found) == set(want), f"example blocks in docs/serving.md: {sorted(found)}, expected {sorted(want)}"
    if os.environ.get("LBP_UPDATE_DOCS") == "1":
        DOC.write_text(BLOCK.sub(lambda m: m.group(1) + want[m.group("name")] + m.group(4), doc), "utf-8")
        return
    for name, body in want.items():
        assert found[name] == body, (f"docs/serving.md example '{name}' differs from the service's answer; "
                                     "rerun with LBP_UPDATE_DOCS=1 to regenerate it")


def test_openapi_examples_are_real_responses(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    req = schemas["ScoreRequest"]["examples"][0]
    got = client.post("/v1/score", json=req)
    assert got.status_code == 200
    assert_nested_close(schemas["ScoreResponse"]["examples"][0], got.json())
    breq = schemas["BatchScoreRequest"]["examples"][0]
    got = client.post("/v1/score/batch", json=breq)
    assert got.status_code == 200
    assert_nested_close(schemas["BatchScoreResponse"]["examples"][0], got.json())


def test_openapi_422_example_is_a_real_response(client):
    example = ERROR_RESPONSES[422]["content"]["application/json"]["example"]
    patient = dict(_curl_body(DOC.read_text("utf-8"), "score")["patient"])
    patient.update(baseline_pain=101, shoe_size=44)
    got = client.post("/v1/score", json={"patient": patient, "comparator": "usual_care"})
    assert got.status_code == 422
    assert got.json() == example
