"""Structured (JSON lines) logs that never contain patient data.

Only an allow-list of fields reaches a log line: method, route *template* (``/v1/score``, never
the raw path or the query string), status, duration, request id, model id, counts and error
*types*. Request bodies, query values, exception messages (which may quote input) and
validation errors are never logged; tracebacks are logged as frames without the message.
"""
from __future__ import annotations

import logging
import re
import sys
import time
import traceback
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.telemetry import Telemetry

LOGGER = "lbp_benefit.serving"
ACCESS_LOGGER = "lbp_benefit.serving.access"
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# Fields copied from a record's ``extra`` into the JSON line; anything else is dropped.
ALLOWED_FIELDS = (
    "request_id", "method", "route", "status", "duration_ms", "model_id", "schema_version", "synthetic",
    "n_patients", "endpoint", "error_type", "n_errors", "host", "port", "auth", "reason",
)

log = logging.getLogger(LOGGER)
access_log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``event`` and allow-listed fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in ALLOWED_FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and where it happened; not its message, which may quote input.
            out["error_type"] = record.exc_info[0].__name__
            out["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        # orjson (a dependency already, for the score responses): several times faster than the
        # standard library on these small objects; UTF-8 as ensure_ascii=False wrote; compact.
        return orjson.dumps(out, default=str).decode("utf-8")


def configure_logging(level: str = "info", stream=None) -> logging.Handler:
    """Send every log record (ours, uvicorn's, FastAPI's) to ``stream`` as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # What a LogRecord gathers that no line of ours prints (the thread, the process and its name):
    # off, as the logging HOWTO's "Optimization" section describes (about 3 us per record).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # uvicorn's access log prints the raw path with its query string: never enable it.
    logging.getLogger("uvicorn.access").disabled = True
    return handler


def route_template(scope: Scope) -> str:
    """The matched route's template (``/v1/score``), or ``unmatched``: never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    return state.get("request_id")


class AccessMiddleware:
    """Request id, timing, metrics and one access-log line per HTTP request.

    Also sets response headers: ``X-Request-ID``, ``X-Content-Type-Options: nosniff`` and, on
    ``/v1/`` routes (which carry patient data), ``Cache-Control: no-store``.
    """

    def __init__(self, app: ASGIApp, telemetry: Telemetry, model_id: Callable[[], str | None]) -> None:
        self.app = app
        self.telemetry = telemetry
        self.model_id = model_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for k, v in scope.get("headers", []):
            if k == b"x-request-id":
                incoming = v.decode("latin-1")
                break
        rid = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        status = {"code": 500}
        sensitive = scope.get("path", "").startswith("/v1/")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = rid
                headers["X-Content-Type-Options"] = "nosniff"
                if sensitive:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        start = time.perf_counter()
        self.telemetry.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            status["code"] = 500
            raise
        finally:
            self.telemetry.in_flight.dec()
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            method = scope.get("method", "")
            code = str(status["code"])
            self.telemetry.observe_request(method, route, code, elapsed)
            access_log.info(
                "request",
                extra={"request_id": rid, "method": method, "route": route, "status": status["code"],
                       "duration_ms": round(elapsed * 1000, 2), "model_id": self.model_id()},
            )
