"""Fetch what the prefetch lacks from the CDS client's FHIR server (CDS Hooks 2.0 "FHIR Resource
Access"): when a prefetch key this service needs is absent and the request carries ``fhirServer``
and ``fhirAuthorization`` (a bearer ``access_token``), the service runs its own prefetch template
for that key against ``fhirServer`` with ``httpx``.

Limits, so a hook call stays well within the client's patience and never reads beyond the patient:

* only the service's own templates, with ``{{context.patientId}}`` filled in, each checked to be a
  read of ``Patient/<id>`` or a search with ``patient=<id>`` (the patient's compartment);
* the patient id must be a FHIR id (``[A-Za-z0-9-.]{1,64}``) and, when ``fhirAuthorization.patient``
  is given, that patient; ``fhirServer`` must be ``https``
  (``http`` only on a loopback host) and, when ``LBP_CDS_FHIR_SERVERS`` is set, start with one of
  its prefixes;
* ``Authorization: Bearer <access_token>``; the token is never logged or stored, and httpx's own
  request log lines (which carry the URL, hence the patient id) are silenced;
* timeouts (``LBP_CDS_FHIR_TIMEOUT_S`` per request), no redirects, at most :data:`MAX_PAGES` pages
  per search (``next`` links only on the same server), the keys fetched concurrently. The merged
  Bundle keeps the last page's links, so a ``next`` link left (pages not fetched) makes the mapping
  report the result as incomplete.

A failed fetch (HTTP error, timeout, not FHIR) becomes an ``OperationOutcome`` in that prefetch slot,
so it is reported as a fetch failure, never as "no data".
"""
from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import quote, urlsplit

import httpx

from serving.settings import is_loopback

# httpx logs every request line (URL with the patient id in its query) at INFO: never let it through.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MAX_PAGES = 5
ACCEPT = "application/fhir+json, application/json;q=0.9"


def _outcome(text: str) -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "exception", "diagnostics": text[:300]}]}


def server_problem(fhir_server: str | None, auth: dict | None, patient_id: str,
                   allowed: list[str]) -> str | None:
    """Why the service may not fetch from this server for this request (None: it may)."""
    if not fhir_server or not isinstance(auth, dict):
        lacking = [n for n, v in (("fhirServer", fhir_server), ("fhirAuthorization", auth)) if not v]
        return "the request has no " + " and no ".join(lacking or ["usable fhirAuthorization"])
    if str(auth.get("token_type", "")).lower() != "bearer" or not isinstance(auth.get("access_token"), str) \
            or not auth["access_token"]:
        return "fhirAuthorization needs token_type Bearer and an access_token"
    if not FHIR_ID.match(patient_id):
        return "context.patientId is not a FHIR id"
    if auth.get("patient") not in (None, patient_id):  # CDS Hooks 2.0: the patient a token is scoped to
        return "fhirAuthorization is scoped to another patient than context.patientId"
    try:
        parts = urlsplit(fhir_server)
    except ValueError:
        return "fhirServer is not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        return "fhirServer must be an http(s) base URL"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return "fhirServer must use https (http only on a loopback host)"
    if allowed and not any(fhir_server.rstrip("/").startswith(a.rstrip("/")) for a in allowed):
        return "fhirServer is not one of LBP_CDS_FHIR_SERVERS"
    return None


def compartment_query(template: str, patient_id: str) -> str:
    """The template with the patient id filled in; refuses anything outside the patient's compartment."""
    query = template.replace("{{context.patientId}}", quote(patient_id, safe=""))
    if query == f"Patient/{patient_id}":
        return query
    rtype, _, params = query.partition("?")
    if not re.fullmatch(r"[A-Z][A-Za-z]+", rtype) or f"patient={patient_id}" not in params.split("&"):
        raise ValueError(f"prefetch template {template!r} is not a search in the patient's compartment")
    return query


async def _get_one(client: httpx.AsyncClient, base: str, query: str) -> dict:
    url = f"{base}/{query}"
    out: dict | None = None
    for _ in range(MAX_PAGES):
        r = await client.get(url)
        if r.status_code != 200:
            try:
                body = r.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
                return body
            return _outcome(f"the FHIR server answered HTTP {r.status_code} to {query.split('?')[0]}")
        body = r.json()
        if not isinstance(body, dict) or "resourceType" not in body:
            return _outcome(f"the FHIR server's answer to {query.split('?')[0]} is not a FHIR resource")
        if body.get("resourceType") != "Bundle":
            return body
        if out is None:
            out = body
        else:
            out.setdefault("entry", []).extend(body.get("entry") or [])
            out["link"] = body.get("link") or []  # the last page's links: a 'next' left means pages not fetched
        nxt = next((link.get("url") for link in body.get("link") or []
                    if isinstance(link, dict) and link.get("relation") == "next"), None)
        if not nxt or not str(nxt).startswith(base + "/"):
            break
        url = nxt
    return out or _outcome("no Bundle")


async def fetch_missing(fhir_server: str, auth: dict, patient_id: str, templates: dict[str, str],
                        keys: list[str], timeout_s: float,
                        transport: httpx.AsyncBaseTransport | None = None) -> dict[str, dict]:
    """Run the templates of ``keys`` against ``fhir_server``; each key → a resource, Bundle or
    OperationOutcome (on failure)."""
    base = fhir_server.rstrip("/")
    headers = {"Authorization": f"Bearer {auth['access_token']}", "Accept": ACCEPT}
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 1.0))
    async with httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False,
                                 transport=transport, trust_env=False) as client:
        async def one(key: str) -> dict:
            try:
                return await _get_one(client, base, compartment_query(templates[key], patient_id))
            except httpx.TimeoutException:
                return _outcome(f"the FHIR server did not answer within {timeout_s:g} s")
            except (httpx.HTTPError, ValueError) as exc:
                return _outcome(f"fetching from the FHIR server failed ({type(exc).__name__})")
        results = await asyncio.gather(*(one(k) for k in keys))
    return dict(zip(keys, results))
