"""The web calculator (serving/calculator) without a browser: the page built from the feature schema,
its security headers, assets, access rules and scoring endpoint, against a small scorer double."""
from __future__ import annotations

import base64
import json
import logging
import re
from html.parser import HTMLParser

from fastapi.testclient import TestClient

from predict.schema import CovariateSpec, FeatureSchema
from serving.app import create_app
from serving.calculator.page import follow_up_labels
from serving.logs import JsonFormatter
from serving.settings import ServingSettings

LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)
COVARIATES = (
    CovariateSpec("age", "continuous", "Age", "years", (18.0, 100.0)),
    CovariateSpec("female", "binary", "Female sex", reference="0 = male"),
    CovariateSpec("fear_avoidance", "continuous", "Fear-avoidance beliefs", "0-100", (0.0, 100.0)),
    CovariateSpec("pain_site", "categorical", "Pain site", categories=("back_only", "back_and_leg")),
)


class Double:
    """A scorer double returning results shaped like predict.Scorer's (task-keyed outcomes)."""

    def __init__(self, *, synthetic=True, covariates=COVARIATES, study="lbp_default"):
        self.schema = FeatureSchema(tuple(covariates))
        self.baselines = ["baseline_pain", "baseline_function"]
        self.comparators = ["no_treatment", "usual_care", "other_conservative"]
        self.outcomes = ["pain", "global_recovery"]
        self.follow_ups = ["short", "moderate"]
        self.manifest = {"model_id": "double-calc", "synthetic": synthetic, "study": study,
                         "sparse_comparators": ["no_treatment"], "active": "exercise",
                         "labels": {"intervention": "exercise therapy", "comparator": "non-exercise care"}}
        self.card_markdown = "# Model card: double-calc\n\nNot for clinical use.\n"
        self.card = {"model_id": "double-calc"}
        self.calls: list = []

    def score(self, patients, comparator, outcomes=None):
        self.calls.append(([dict(p) for p in patients], comparator, outcomes))
        out = []
        for p in patients:
            b = 0.1 * p["baseline_pain"]
            out.append({"outcomes": {
                "pain__short": {"outcome": "pain", "follow_up": "short", "available": True,
                                "intervention": {"expected": 40.0}, "comparator": {"class": comparator, "expected": 40.0 + b},
                                "benefit": {"estimate": b, "ci": [b - 2, b + 2], "prediction_interval": [b - 9, b + 9]},
                                "smallest_worthwhile": {"threshold": 0.2 * p["baseline_pain"]},
                                "clears_smallest_worthwhile": False},
                "global_recovery__moderate": {"outcome": "global_recovery", "follow_up": "moderate", "available": True,
                                              "intervention": {"expected": 0.6}, "comparator": {"expected": 0.5},
                                              "benefit": {"estimate": 0.1, "ci": [0.0, 0.2]}}},
                "top_factors": [], "missing": [{"name": n, "handled_as": "imputed"}
                                               for n in self.schema.names if n not in p], "warnings": []})
        return out


def make_client(scorer=None, addr=LOOPBACK, **kw) -> TestClient:
    base = dict(model_path=None, api_keys="", allow_unauthenticated=False, cors_origins="", warmup=True, docs=True)
    base.update(kw)
    return TestClient(create_app(scorer or Double(), ServingSettings(**base)), client=addr)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(html)
    return p.tags


def config_of(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="calc-config">(.*?)</script>', html, re.S)
    assert m, "the page carries its field specification"
    return json.loads(m.group(1))


BODY = {"patient": {"baseline_pain": 62, "baseline_function": 41, "age": 47, "female": 1}, "comparator": "usual_care"}


# ---------------------------------------------------------------- the page

def test_page_is_built_from_the_feature_schema():
    with make_client() as c:
        r1, r2 = c.get("/"), c.get("/calculator")
    assert r1.status_code == r2.status_code == 200 and r1.text == r2.text
    assert r1.headers["content-type"].startswith("text/html")
    html, t = r1.text, tags(r1.text)
    ids = {a.get("id"): (tag, a) for tag, a in t if a.get("id")}
    for b in ("baseline_pain", "baseline_function"):  # labelled; optional (each outcome needs its own)
        tag, a = ids[f"f-{b}"]
        assert tag == "input" and "required" not in a
        assert ("label", {"for": f"f-{b}"}) in t
    age = ids["f-age"][1]
    assert "required" not in age and "f-age-hint" in age["aria-describedby"]
    assert re.search(r'<label for="f-age">Age <span class="unit">\(years\)</span></label>', html)
    assert "18 to 100 years. Leave empty if unknown." in html
    assert "0 to 100. Leave empty if unknown." in html  # the unit "0-100" is not repeated after the range
    radios = [a for tag, a in t if tag == "input" and a.get("name") == "female"]
    assert [a["value"] for a in radios] == ["", "0", "1"] and "checked" in radios[0]
    assert "No (male)" in html
    options = re.findall(r'<option value="([^"]*)"', html.split('id="f-pain_site"')[1].split("</select>")[0])
    assert options == ["", "back_only", "back_and_leg"]
    comps = re.findall(r'<option value="([^"]*)"', html.split('id="f-comparator"')[1].split("</select>")[0])
    assert comps == ["no_treatment", "usual_care", "other_conservative"]
    assert '<option value="usual_care" selected>' in html and "Few trials compared exercise therapy with no treatment" in html
    assert "<title>Exercise therapy: individual benefit calculator</title>" in html  # the configured label
    cfg = config_of(html)
    assert [f["name"] for f in cfg["covariates"]] == ["age", "female", "fear_avoidance", "pain_site"]
    assert cfg["covariates"][0]["range"] == [18.0, 100.0] and cfg["score_url"] == "/calculator/score"
    assert cfg["follow_up_labels"]["short"] == "about 3 months (short-term follow-up)"
    assert "Synthetic data &mdash; not for clinical use." in html and cfg["synthetic"] is True
    assert 'href="/calculator/model-card"' in html


def test_no_synthetic_banner_for_a_real_data_model_and_truthful_follow_up_labels():
    d = Double(synthetic=False, study="my_study")
    with make_client(d) as c:
        html = c.get("/").text
    assert "Synthetic data" not in html and config_of(html)["synthetic_warning"] is None
    assert follow_up_labels(d) == {"short": "short-term follow-up", "moderate": "moderate-term follow-up"}


def test_csp_no_inline_script_no_external_resources():
    with make_client() as c:
        r = c.get("/")
        js = c.get("/calculator/static/calculator.js")
        css = c.get("/calculator/static/calculator.css")
        icon = c.get("/calculator/static/icon.svg")
        assert c.get("/calculator/static/../app.py").status_code == 404
        assert c.get("/calculator/static/nothing.js").status_code == 404
    csp = r.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    for tag, a in tags(r.text):
        if tag == "script":
            assert "src" in a or a.get("type") == "application/json", a
        assert "style" not in a and not any(k.startswith("on") for k in a), (tag, a)
    assert js.headers["content-type"].startswith("text/javascript") and "fetch(cfg.score_url" in js.text
    assert css.headers["content-type"].startswith("text/css") and icon.headers["content-type"] == "image/svg+xml"
    for text in (r.text, js.text, css.text, icon.text):
        # the only absolute URL allowed is the SVG namespace name (never fetched)
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, urls
    for banned in ("localStorage", "sessionStorage", "document.cookie", "indexedDB", "innerHTML", "eval("):
        assert banned not in js.text


def test_labels_cannot_break_out_of_the_page():
    evil = CovariateSpec("odd", "continuous", '</script><script>alert(1)</script>', "<b>u</b>", (0.0, 1.0))
    with make_client(Double(covariates=(evil,))) as c:
        html = c.get("/").text
    assert "<script>alert(1)" not in html and "&lt;/script&gt;&lt;script&gt;" in html
    assert config_of(html)["covariates"][0]["label"] == '</script><script>alert(1)</script>'


# ---------------------------------------------------------------- scoring through the calculator

def test_calculator_score_is_the_v1_score_answer_and_is_not_cached():
    d = Double()
    with make_client(d) as c:
        a = c.post("/calculator/score", json=BODY)
        b = c.post("/v1/score", json=BODY)
    assert a.status_code == 200, a.text
    assert a.json() == b.json() and a.json()["result"]["outcomes"]["pain__short"]["benefit"]["estimate"] == 6.2
    assert a.headers["cache-control"] == "no-store"
    assert d.calls[-2][0] == [{"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47.0, "female": 1}]


def test_calculator_score_refuses_bad_input_and_other_content_types():
    with make_client() as c:
        bad = c.post("/calculator/score", json={**BODY, "patient": {**BODY["patient"], "age": 150}})
        text = c.post("/calculator/score", content=json.dumps(BODY), headers={"Content-Type": "text/plain"})
        form = c.post("/calculator/score", data={"patient": "x"})
    assert bad.status_code == 422 and [d["field"] for d in bad.json()["detail"]] == ["patient.age"]
    assert "150" not in bad.text
    assert text.status_code == 415 and form.status_code == 415


def test_model_card_page():
    with make_client() as c:
        r = c.get("/calculator/model-card")
    assert r.status_code == 200 and r.text.startswith("# Model card: double-calc")
    assert r.headers["content-type"].startswith("text/plain")


# ---------------------------------------------------------------- access: the API's terms

ROUTES = [("GET", "/"), ("GET", "/calculator"), ("GET", "/calculator/static/calculator.js"),
          ("GET", "/calculator/model-card"), ("POST", "/calculator/score")]


def _call(c, method, path, headers=None):
    if method == "POST":
        return c.post(path, json=BODY, headers=headers or {})
    return c.get(path, headers=headers or {})


def test_without_keys_only_loopback_clients_unless_allowed():
    with make_client(addr=REMOTE) as c:
        assert {_call(c, m, p).status_code for m, p in ROUTES} == {403}
    with make_client(addr=REMOTE, allow_unauthenticated=True) as c:
        assert {_call(c, m, p).status_code for m, p in ROUTES} == {200}


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_with_keys_every_route_needs_one_and_browsers_can_use_basic_auth():
    with make_client(addr=REMOTE, api_keys="k-one,k-two") as c:
        for m, p in ROUTES:
            r = _call(c, m, p)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic realm="), p
            assert _call(c, m, p, _basic("anyone", "wrong")).status_code == 401
            assert _call(c, m, p, {"Authorization": "Basic !!notbase64"}).status_code == 401
            assert _call(c, m, p, _basic("clinician", "k-two")).status_code == 200, p
            assert _call(c, m, p, {"X-API-Key": "k-one"}).status_code == 200
            assert _call(c, m, p, {"Authorization": "Bearer k-one"}).status_code == 200
        # the API itself keeps its own rules: Basic is only for the calculator
        assert c.post("/v1/score", json=BODY, headers=_basic("x", "k-one")).status_code == 401


def test_calculator_requests_log_no_patient_data(caplog):
    secrets = ["47.123", "61.987", "147.321"]
    lines: list[str] = []
    routes: set = set()

    class Collect(logging.Handler):
        def emit(self, record):
            line = JsonFormatter().format(record)
            routes.add(json.loads(line).get("route"))
            lines.append(line + repr(record.__dict__))

    root, handler = logging.getLogger(), Collect()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        with make_client() as c:
            ok = c.post("/calculator/score", json={"patient": {"baseline_pain": 61.987, "baseline_function": 40,
                                                               "age": 47.123}, "comparator": "usual_care"})
            bad = c.post("/calculator/score", json={"patient": {"baseline_pain": 50, "baseline_function": 40,
                                                                "age": 147.321}, "comparator": "usual_care"})
            assert ok.status_code == 200 and bad.status_code == 422
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    everything = "\n".join(lines + [r.getMessage() for r in caplog.records])
    assert "/calculator/score" in routes
    for s in secrets:
        assert s not in everything, f"{s} leaked into the logs"
