"""Verification of the CDS client's JWT (CDS Hooks 2.0, "Trusting CDS Clients").

Every CDS Hooks call, discovery included, must carry ``Authorization: Bearer <JWT>`` signed by a
trusted client. Trust is configuration only (``LBP_CDS_TRUSTED_ISSUERS``): a JSON or YAML file
mapping each allowed ``iss`` to its public keys, as PEM files or a JWKS JSON file; nothing is
fetched from ``jku`` URLs. Only asymmetric algorithms are accepted (RS256, RS384, PS256, PS384,
PS512, ES256, ES384), chosen by the *configured key's* type, never by the token header alone, so
``none`` and HMAC are impossible. The header must carry a ``kid`` (CDS Hooks 2.0: "kid: the
identifier of the key-pair used to sign this JWT", required); it selects the issuer's key (a key
configured without a kid matches any kid). Required claims: ``iss``, ``aud`` (the exact URL of the endpoint
called), ``exp``, ``iat`` and ``jti``; a ``jti`` seen before (until its ``exp``) is a replay.

Issuers file::

    issuers:
      https://ehr.example.org:
        keys: [ehr-signing.pem]            # PEM public keys; {file: x.pem, kid: k1} to pin a kid
      https://other.example.org:
        jwks: other-jwks.json              # a JWKS file; keys used by their kid

Relative paths are relative to the issuers file.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from predict.errors import LbpError
from predict.yaml_file import load_yaml

RSA_ALGS = ("RS256", "RS384", "PS256", "PS384", "PS512")
EC_ALGS = {"secp256r1": ("ES256",), "secp384r1": ("ES384",)}
ALLOWED_ALGS = RSA_ALGS + ("ES256", "ES384")
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")
MIN_RSA_BITS = 2048
LEEWAY_S = 30
MAX_JTI = 100_000


class CdsAuthError(Exception):
    """A refused token: ``reason`` is a short code safe to log; the message is for the client."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TrustedKey:
    key: Any
    algorithms: tuple[str, ...]
    kid: str | None = None


def _algs_for(key: Any, where: str) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise LbpError(f"{where}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required")
        return RSA_ALGS
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in EC_ALGS:
        return EC_ALGS[key.curve.name]
    raise LbpError(f"{where}: only RSA (>= 2048 bits) and EC P-256/P-384 public keys are accepted")


def _pem_key(path: Path, kid: str | None) -> TrustedKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LbpError(f"cannot read the CDS client key {path}: {exc.strerror or exc}") from exc
    if b"PRIVATE KEY" in data:
        raise LbpError(f"{path} holds a private key: configure the CDS client's public key only")
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise LbpError(f"{path} is not a PEM public key") from exc
    return TrustedKey(key, _algs_for(key, str(path)), kid)


def _jwks_keys(path: Path) -> list[TrustedKey]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise LbpError(f"cannot read the JWKS file {path}: {exc}") from exc
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys:
        raise LbpError(f"the JWKS file {path} has no 'keys' list")
    out = []
    for i, jwk in enumerate(keys):
        where = f"{path} keys[{i}]"
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC"):
            raise LbpError(f"{where}: only RSA and EC keys are accepted (no symmetric 'oct' keys)")
        if any(p in jwk for p in ("d", "p", "q")):
            raise LbpError(f"{where} holds private key material: configure public keys only")
        if jwk.get("use") not in (None, "sig"):
            continue
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, ValueError, TypeError) as exc:
            raise LbpError(f"{where} is not a usable public key: {exc}") from exc
        algs = _algs_for(key, where)
        if jwk.get("alg"):
            if jwk["alg"] not in algs:
                raise LbpError(f"{where}: alg {jwk['alg']} is not allowed for this key (allowed: {', '.join(algs)})")
            algs = (jwk["alg"],)
        out.append(TrustedKey(key, algs, jwk.get("kid")))
    return out


def load_trusted_issuers(path: str | Path) -> dict[str, tuple[TrustedKey, ...]]:
    """Read the issuers file (JSON or YAML): ``{issuers: {iss: {keys: [...], jwks: file}}}``."""
    path = Path(path)
    doc = load_yaml(path, "LBP_CDS_TRUSTED_ISSUERS file")  # YAML is a superset of JSON
    issuers = doc.get("issuers") if isinstance(doc, dict) else None
    if not isinstance(issuers, dict) or not issuers:
        raise LbpError(f"{path}: expected a mapping 'issuers: {{<iss>: {{keys: [...]}} or {{jwks: file}}}}'")
    out: dict[str, tuple[TrustedKey, ...]] = {}
    for iss, spec in issuers.items():
        if not isinstance(iss, str) or not iss or not isinstance(spec, dict) or set(spec) - {"keys", "jwks"}:
            raise LbpError(f"{path}: issuer {iss!r} needs 'keys' (PEM files) and/or 'jwks' (a JWKS file), nothing else")
        keys: list[TrustedKey] = []
        for k in spec.get("keys") or []:
            file, kid = (k.get("file"), k.get("kid")) if isinstance(k, dict) else (k, None)
            if not isinstance(file, str):
                raise LbpError(f"{path}: issuer {iss}: each key is a file path or {{file, kid}}")
            keys.append(_pem_key(path.parent / file, kid))
        if spec.get("jwks"):
            keys.extend(_jwks_keys(path.parent / str(spec["jwks"])))
        if not keys:
            raise LbpError(f"{path}: issuer {iss} has no key")
        out[iss] = tuple(keys)
    return out


class JtiCache:
    """Seen ``jti`` values per issuer until their ``exp``: a second use is a replay."""

    def __init__(self, max_size: int = MAX_JTI):
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.max_size = max_size

    def first_use(self, iss: str, jti: str, exp: float, now: float) -> bool:
        with self._lock:
            if len(self._seen) >= self.max_size:
                self._seen = {k: e for k, e in self._seen.items() if e + LEEWAY_S >= now}
                while len(self._seen) >= self.max_size:  # still full of live tokens: drop the soonest to expire
                    self._seen.pop(min(self._seen, key=self._seen.__getitem__))
            if (iss, jti) in self._seen:
                return False
            self._seen[(iss, jti)] = exp
            return True


class CdsJwtVerifier:
    """Checks a CDS client's bearer JWT against the configured issuers."""

    def __init__(self, issuers: dict[str, tuple[TrustedKey, ...]], clock: Callable[[], float] = time.time):
        self.issuers = issuers
        self.clock = clock
        self.jtis = JtiCache()

    def verify(self, token: str | None, audience: str) -> dict:
        """Return the verified claims, or raise :class:`CdsAuthError`."""
        if not self.issuers:
            raise CdsAuthError("no_trusted_issuer", "this CDS service trusts no CDS client yet "
                                                    "(its operator must set LBP_CDS_TRUSTED_ISSUERS)")
        if not token:
            raise CdsAuthError("missing_token", "a CDS client JWT is required (Authorization: Bearer <JWT>)")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise CdsAuthError("malformed", "the bearer token is not a JWT") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise CdsAuthError("algorithm", f"JWT alg must be one of {', '.join(ALLOWED_ALGS)}")
        iss = unverified.get("iss")
        keys = self.issuers.get(iss) if isinstance(iss, str) else None
        if not keys:
            raise CdsAuthError("untrusted_issuer", "the JWT issuer (iss) is not a trusted CDS client")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise CdsAuthError("missing_kid", "the JWT header needs a kid (the id of the client's signing key)")
        candidates = [k for k in keys if alg in k.algorithms and k.kid in (None, kid)]
        if not candidates:
            raise CdsAuthError("no_key", "no trusted key of this issuer matches the JWT's kid and alg")
        for k in candidates:
            try:
                claims = jwt.decode(token, k.key, algorithms=[alg], audience=audience, issuer=iss,
                                    leeway=LEEWAY_S, options={"require": list(REQUIRED_CLAIMS)})
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError as exc:
                raise CdsAuthError("expired", "the JWT has expired") from exc
            except jwt.InvalidAudienceError as exc:
                raise CdsAuthError("audience", f"the JWT audience (aud) must be {audience}") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise CdsAuthError("missing_claim", f"the JWT lacks the required claim '{exc.claim}'") from exc
            except jwt.PyJWTError as exc:
                raise CdsAuthError("invalid", f"the JWT is not valid ({type(exc).__name__})") from exc
            if not isinstance(claims["jti"], str) or not claims["jti"]:
                raise CdsAuthError("missing_claim", "the JWT jti must be a non-empty string")
            if not self.jtis.first_use(iss, claims["jti"], float(claims["exp"]), self.clock()):
                raise CdsAuthError("replay", "this JWT (jti) was already used")
            return claims
        raise CdsAuthError("signature", "the JWT signature does not verify with the issuer's keys")
