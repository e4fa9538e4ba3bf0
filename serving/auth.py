"""API-key authentication, as a FastAPI dependency.

A key is sent as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. Keys are compared in
constant time (SHA-256 digests of equal length, every configured key checked). With no key
configured the service is open only to loopback clients, unless ``LBP_ALLOW_UNAUTHENTICATED``
says that something in front of it authenticates.
"""
from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.settings import ServingSettings, is_loopback

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from LBP_API_KEYS.")
bearer = HTTPBearer(auto_error=False, description="An API key from LBP_API_KEYS, as a bearer token.")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_matches(presented: str, keys: list[str]) -> bool:
    """Constant-time check of ``presented`` against every configured key."""
    given = _digest(presented)
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, _digest(key))
    return ok


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=message,
                         headers={"WWW-Authenticate": 'Bearer realm="lbp-benefit"'})


async def require_api_key(
    request: Request,
    x_api_key: str | None = Security(api_key_header),
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> None:
    """Let the request through if it carries a valid key (or, with no keys configured, if allowed).
    (``async``: it does no I/O, and FastAPI would run a plain function on its thread pool, a
    thread hop per request.)"""
    settings: ServingSettings = request.app.state.settings
    keys = settings.api_key_list
    if not keys:
        check_loopback_or_allowed(request)
        return
    presented = x_api_key or (credentials.credentials if credentials is not None else None)
    if not presented:
        raise _unauthorized("an API key is required (X-API-Key header or Authorization: Bearer)")
    if not key_matches(presented, keys):
        raise _unauthorized("the API key is not valid")


async def require_loopback_or_allowed(request: Request) -> None:
    """With no keys configured: answer loopback clients only, unless LBP_ALLOW_UNAUTHENTICATED."""
    check_loopback_or_allowed(request)


def check_loopback_or_allowed(request: Request) -> None:
    """The rule of :func:`require_loopback_or_allowed`, as a plain function (raises HTTPException)."""
    settings: ServingSettings = request.app.state.settings
    if settings.allow_unauthenticated:
        return
    client = request.client.host if request.client else ""
    if is_loopback(client):
        return
    raise HTTPException(
        status_code=status.HTTP_403_FORBIDDEN,
        detail="this server has no API keys configured and answers only loopback clients",
    )
