"""One plain ASGI middleware for every request: request id, security headers, body-size limit, metrics, access log.

Plain ASGI (not BaseHTTPMiddleware) because it sits on the scoring hot path. An oversized body is
refused with 413 from its Content-Length header before anything reads it, or while it streams in
when there is none (the error handlers give that 413 the contract's shape). FastAPI's own
`max_body_size` is not used: its 413 is plain text, not the contract's error shape.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time
from typing import Any

from serving.errors import BodyTooLarge, body_too_large_message
from serving.logs import request_id
from serving.metrics import Metrics

log = logging.getLogger("samepage.serving")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
Scope = dict[str, Any]

# The pages are server-rendered with no inline script (Swagger UI's starter is static/docs.js), so
# scripts come from this origin only. Styles may be inline: the templates size bars and colour
# cells with style attributes, which nonces cannot cover; CSS runs no code, and autoescaping keeps
# injected markup out. Nothing may frame a page (clickjacking on the stage-change buttons).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Lead ids are in page URLs: no referrer leaves the site. Not "no-referrer": with it browsers send
    # `Origin: null` on our own form posts, which the pages refuse as cross-site.
    (b"referrer-policy", b"same-origin"),
]


class RequestMiddleware:
    def __init__(
        self,
        app: Any,
        metrics: Metrics,
        max_body_bytes: int,
        access_log: bool = True,
        path_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.path_limits = path_limits or {}  # routes whose contract allows larger bodies
        self.access_log = access_log
        # Request ids: a random prefix per process and a counter, 32 hex digits like a uuid4's, unique
        # across workers and restarts without a urandom call per request.
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count()

    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFFFFFF:016x}"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _incoming_id(scope) or self._new_id()
        token = request_id.set(rid)
        status = 500
        rid_header = (b"x-request-id", rid.encode())

        limit = self.path_limits.get(scope.get("path", ""), self.max_body)
        length = _content_length(scope)
        if length is not None and length > limit:
            status = 413
            await _send_error(send, 413, body_too_large_message(limit), rid_header)
            self._record(scope, status, started)
            request_id.reset(token)
            return

        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header, *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._record(scope, status, started)
            request_id.reset(token)

    def _record(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", None) or "unmatched"  # a template: no ids in labels
        method = scope["method"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(elapsed)
        if self.access_log:
            log.info(
                "request",
                extra={
                    "event": "request",
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None  # never echo arbitrary bytes into logs
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Any, status: int, message: str, extra_header: tuple[bytes, bytes]) -> None:
    body = json.dumps({"error": {"code": "payload_too_large", "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        extra_header,
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
