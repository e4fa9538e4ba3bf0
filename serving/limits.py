"""Request body size limit: 413 for bodies over ``LBP_MAX_BODY_BYTES``.

A declared ``Content-Length`` over the limit is refused before anything is read; a body without
one (chunked transfer) is counted as it arrives and refused as soon as it passes the limit, so a
client cannot make the server buffer an unbounded body.
"""
from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body is larger than the limit of {limit} bytes")


class BodySizeLimitMiddleware:
    """``max_bytes`` for every route; ``path_limits`` (path prefix → bytes) for the routes under a
    prefix (the CDS Hooks routes: a prefetch carries a patient's record, whose size the EHR decides)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    def limit_for(self, path: str) -> int:
        return next((n for p, n in self.path_limits.items() if path == p or path.startswith(p.rstrip("/") + "/")),
                    self.max_bytes)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps({"detail": BodyTooLarge(limit).detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:  # the HTTP server refuses these; the counting below still applies
                    break
                if declared > limit:
                    await self._refuse(send, limit)
                    return
                break
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions from body reading; its handler answers 413.
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send, limit)
