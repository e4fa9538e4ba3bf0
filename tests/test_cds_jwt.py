"""CDS client JWT verification (serving/cds/jwt_auth.py) and its use on every CDS Hooks call:
tokens signed with locally generated keys; missing, expired, foreign, replayed and HMAC/none
tokens are refused; with no trusted issuer every call is refused and the log says how to fix it."""
from __future__ import annotations

import json
import logging
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from predict.errors import LbpError
from predict.schema import CovariateSpec, FeatureSchema
from serving.app import create_app
from serving.cds.jwt_auth import CdsAuthError, CdsJwtVerifier, load_trusted_issuers
from serving.settings import ServingSettings

ISS = "https://ehr.example.org"
BASE = "https://cds.example.org/lbp"
DISCOVERY = BASE + "/cds-services"
SERVICE = DISCOVERY + "/lbp-exercise-benefit"


@pytest.fixture(scope="module")
def keys():
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP384R1()),
            "foreign": rsa.generate_private_key(public_exponent=65537, key_size=2048)}


def pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def issuers_file(keys, tmp_path_factory):
    d = tmp_path_factory.mktemp("issuers")
    (d / "ehr-rsa.pem").write_bytes(pem(keys["rsa"]))
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(keys["ec"].public_key()))
    (d / "ehr-jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "ec-1", "use": "sig", "alg": "ES384"}]}))
    f = d / "issuers.yaml"
    f.write_text(f"issuers:\n  {ISS}:\n    keys: [ehr-rsa.pem]\n    jwks: ehr-jwks.json\n")
    return f


def token(key, aud=SERVICE, alg="RS384", iss=ISS, exp_in=300, kid="rsa-1", drop=(), **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "iat": now, "exp": now + exp_in, "jti": uuid.uuid4().hex, **claims}
    for c in drop:
        payload.pop(c)
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


# ----------------------------------------------------------------------------- the verifier
def test_valid_rsa_pss_and_ec_tokens_are_accepted(keys, issuers_file):
    v = CdsJwtVerifier(load_trusted_issuers(issuers_file))
    for alg in ("RS256", "RS384", "PS256", "PS384"):
        assert v.verify(token(keys["rsa"], alg=alg), SERVICE)["iss"] == ISS
    assert v.verify(token(keys["ec"], alg="ES384", kid="ec-1"), SERVICE)["iss"] == ISS


@pytest.mark.parametrize("case, reason", [
    ("missing", "missing_token"), ("expired", "expired"), ("foreign", "signature"), ("issuer", "untrusted_issuer"),
    ("audience", "audience"), ("no_jti", "missing_claim"), ("no_exp", "missing_claim"), ("hmac", "algorithm"),
    ("none", "algorithm"), ("garbage", "malformed"), ("ec_as_es256", "no_key"), ("no_kid", "missing_kid"),
    ("wrong_kid", "no_key"),
])
def test_bad_tokens_are_refused(keys, issuers_file, case, reason):
    v = CdsJwtVerifier(load_trusted_issuers(issuers_file))
    tok = {
        "missing": lambda: None,
        "expired": lambda: token(keys["rsa"], exp_in=-120),
        "foreign": lambda: token(keys["foreign"]),
        "issuer": lambda: token(keys["rsa"], iss="https://evil.example.org"),
        "audience": lambda: token(keys["rsa"], aud=BASE + "/cds-services/other"),
        "no_jti": lambda: token(keys["rsa"], drop=("jti",)),
        "no_exp": lambda: token(keys["rsa"], drop=("exp",)),
        "hmac": lambda: token("a-shared-secret-that-is-long-enough-for-hs256", alg="HS256"),
        "none": lambda: jwt.encode({"iss": ISS, "aud": SERVICE, "exp": int(time.time()) + 60, "iat": 0, "jti": "x"},
                                   None, algorithm="none"),
        "garbage": lambda: "not.a.jwt",
        "ec_as_es256": lambda: token(ec.generate_private_key(ec.SECP256R1()), alg="ES256", kid="ec-1"),
        "no_kid": lambda: token(keys["rsa"], kid=None),  # CDS Hooks 2.0: kid is required
        "wrong_kid": lambda: token(keys["ec"], alg="ES384", kid="not-configured"),
    }[case]()
    with pytest.raises(CdsAuthError) as err:
        v.verify(tok, SERVICE)
    assert err.value.reason == reason


def test_a_replayed_jti_is_refused(keys, issuers_file):
    v = CdsJwtVerifier(load_trusted_issuers(issuers_file))
    tok = token(keys["rsa"])
    v.verify(tok, SERVICE)
    with pytest.raises(CdsAuthError, match="already used"):
        v.verify(tok, SERVICE)


def test_no_issuer_refuses_everything(keys):
    with pytest.raises(CdsAuthError) as err:
        CdsJwtVerifier({}).verify(token(keys["rsa"]), SERVICE)
    assert err.value.reason == "no_trusted_issuer"


def test_issuers_file_refuses_private_symmetric_and_weak_keys(keys, tmp_path):
    priv = keys["rsa"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    (tmp_path / "priv.pem").write_bytes(priv)
    (tmp_path / "a.yaml").write_text(f"issuers:\n  {ISS}:\n    keys: [priv.pem]\n")
    with pytest.raises(LbpError, match="private key"):
        load_trusted_issuers(tmp_path / "a.yaml")
    (tmp_path / "oct.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    (tmp_path / "b.json").write_text(json.dumps({"issuers": {ISS: {"jwks": "oct.json"}}}))
    with pytest.raises(LbpError, match="no symmetric"):
        load_trusted_issuers(tmp_path / "b.json")
    (tmp_path / "weak.pem").write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    (tmp_path / "c.yaml").write_text(f"issuers:\n  {ISS}:\n    keys: [weak.pem]\n")
    with pytest.raises(LbpError, match="at least 2048"):
        load_trusted_issuers(tmp_path / "c.yaml")
    with pytest.raises(LbpError, match="cannot read"):
        load_trusted_issuers(tmp_path / "absent.yaml")


# ----------------------------------------------------------------------------- on the app
class TinyScorer:
    """The smallest ScorerLike for auth tests (the card tests use the real small model)."""
    schema = FeatureSchema((CovariateSpec("age", "continuous", "Age", "years", (18.0, 100.0)),))
    baselines = ["baseline_pain", "baseline_function"]
    comparators = ["usual_care", "no_treatment"]
    outcomes = ["pain"]
    manifest = {"model_id": "tiny-1", "schema_version": "1.0", "synthetic": True}
    card_markdown = "# tiny\n"
    card = {"model_id": "tiny-1"}

    def score(self, patients, comparator, outcomes=None):
        est = 0.1 * patients[0]["baseline_pain"]
        return [{"outcomes": {"pain__short": {"outcome": "pain", "follow_up": "short", "available": True,
                                              "benefit": {"estimate": est, "ci": [est - 2, est + 2]}}},
                 "top_factors": [], "missing": [], "warnings": []} for _ in patients]


def app_client(issuers=None, **kw) -> TestClient:
    settings = ServingSettings(model_path=None, api_keys="", warmup=False, cds_trusted_issuers=issuers,
                               cds_base_url=BASE, **{"cds_feedback_db": "sqlite://", **kw})
    return TestClient(create_app(TinyScorer(), settings), client=("127.0.0.1", 5000))


def call_body():
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "context": {"patientId": "p1"},
            "prefetch": {"patient": None, "observations": None}}


def test_discovery_and_calls_need_a_valid_token(keys, issuers_file):
    with app_client(issuers_file) as c:
        assert c.get("/cds-services").status_code == 401
        r = c.get("/cds-services", headers={"Authorization": "Bearer " + token(keys["rsa"], aud=DISCOVERY)})
        assert r.status_code == 200 and r.json()["services"][0]["id"] == "lbp-exercise-benefit"
        # a token for the discovery URL is not valid for the service, and vice versa
        r = c.post("/cds-services/lbp-exercise-benefit", json=call_body(),
                   headers={"Authorization": "Bearer " + token(keys["rsa"], aud=DISCOVERY)})
        assert r.status_code == 401 and "aud" in r.json()["detail"]
        for bad in (token(keys["rsa"], exp_in=-120), token(keys["foreign"]), "", "Basic abc"):
            r = c.post("/cds-services/lbp-exercise-benefit", json=call_body(),
                       headers={"Authorization": bad if bad.startswith("Basic") else f"Bearer {bad}"})
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = c.post("/cds-services/lbp-exercise-benefit", json=call_body(),
                   headers={"Authorization": "Bearer " + token(keys["rsa"])})
        assert r.status_code == 200 and r.json()["cards"][0]["summary"].startswith("Exercise therapy benefit: not")


def test_unauthenticated_malformed_body_is_refused_before_it_is_read(keys, issuers_file):
    with app_client(issuers_file) as c:
        r = c.post("/cds-services/lbp-exercise-benefit", content=b"{not json",
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 401


def test_without_trusted_issuers_every_cds_call_is_refused_and_the_log_says_how(keys, caplog):
    caplog.set_level(logging.WARNING, logger="lbp_benefit.serving")
    with app_client(None) as c:
        assert c.get("/cds-services", headers={"Authorization": "Bearer " + token(keys["rsa"], aud=DISCOVERY)}
                     ).status_code == 401
        assert c.post("/cds-services/lbp-exercise-benefit", json=call_body(),
                      headers={"Authorization": "Bearer " + token(keys["rsa"])}).status_code == 401
        assert c.get("/healthz").status_code == 200  # the rest of the service is unaffected
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2 and all("LBP_CDS_TRUSTED_ISSUERS" in r.getMessage() for r in refused)


def test_bad_cds_configuration_stops_the_app(tmp_path):
    with pytest.raises(LbpError, match="cannot read LBP_CDS_TRUSTED_ISSUERS"):
        app_client(tmp_path / "missing.yaml")
    with pytest.raises(LbpError, match="LBP_CDS_COMPARATOR=placebo"):
        app_client(None, cds_comparator="placebo")
