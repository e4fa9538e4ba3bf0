"""A tiny FHIR R4 test server on 127.0.0.1 (a thread), for the CDS service's FHIR fetch tests.

It answers ``GET /fhir/Patient/<id>`` and ``GET /fhir/<Type>?patient=<id>...`` searches from a
dict of resources, checks the bearer token, records every request (path, query, Authorization),
pages a search with a ``next`` link when asked, and can fail a type (HTTP 500 with an
OperationOutcome) or answer it slowly (to test timeouts).
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FhirState:
    def __init__(self, resources: list[dict], token: str, page_size: int = 50):
        self.resources, self.token, self.page_size = resources, token, page_size
        self.requests: list[dict] = []
        self.fail: set[str] = set()
        self.slow: dict[str, float] = {}


def _bundle(entries: list[dict], base: str, next_url: str | None) -> dict:
    b = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
         "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                   for r in entries]}
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


def _handler(state: FhirState, base_path: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            state.requests.append({"path": parts.path, "query": query,
                                   "authorization": self.headers.get("Authorization")})
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._send(401, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "login", "diagnostics": "bad token"}]})
            rest = parts.path[len(base_path):].strip("/")
            rtype, _, rid = rest.partition("/")
            if rtype in state.slow:
                time.sleep(state.slow[rtype])
            if rtype in state.fail:
                return self._send(500, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "exception", "diagnostics": f"{rtype} search failed"}]})
            base = f"http://{self.headers.get('Host')}{base_path}"
            if rid:
                hit = [r for r in state.resources if r["resourceType"] == rtype and r.get("id") == rid]
                return self._send(200, hit[0]) if hit else self._send(404, {"resourceType": "OperationOutcome",
                                                                            "issue": [{"severity": "error",
                                                                                       "code": "not-found"}]})
            pid = (query.get("patient") or [""])[0]
            hits = [r for r in state.resources if r["resourceType"] == rtype
                    and (r.get("subject") or {}).get("reference") == f"Patient/{pid}"]
            offset = int((query.get("_offset") or ["0"])[0])
            page = hits[offset:offset + state.page_size]
            nxt = None
            if offset + state.page_size < len(hits):
                nxt = f"{base}/{rtype}?patient={pid}&_offset={offset + state.page_size}"
            return self._send(200, _bundle(page, base, nxt))

    return Handler


@contextmanager
def fhir_server(resources: list[dict], token: str = "fhir-token-1", page_size: int = 50):
    """Serve ``resources`` at ``http://127.0.0.1:<port>/fhir``; yields (base_url, state)."""
    state = FhirState(resources, token, page_size)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, "/fhir"))
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/fhir", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)
