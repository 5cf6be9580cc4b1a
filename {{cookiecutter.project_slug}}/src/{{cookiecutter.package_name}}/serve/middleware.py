"""ASGI middleware: request ids, request logs and metrics, and the request size limit.

Written as plain ASGI (not BaseHTTPMiddleware) because it wraps every request, and plain
ASGI adds the least latency.
"""

import json
import logging
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics

log = logging.getLogger("access")

Headers = list[tuple[bytes, bytes]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_json(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """Raised while the body is read, so the app's own error handling answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than MAX_REQUEST_BYTES={limit} bytes")


class RequestMiddleware:
    """Per request: take or make X-Request-ID, enforce MAX_REQUEST_BYTES, log, count, time."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_request_bytes: int) -> None:
        self.app, self.metrics, self.max_bytes = app, metrics, max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = (_header(scope, b"x-request-id") or uuid.uuid4().hex)[:128]
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500
        self.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            length = _header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                status = 413
                await _send_json(send, 413, self._too_large(), [id_header])
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_bytes:
                        raise BodyTooLarge(self.max_bytes)
                return message

            await self.app(scope, limited_receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _too_large(self) -> bytes:
        message = BodyTooLarge(self.max_bytes).detail
        return json.dumps({"detail": message, "error": message}).encode()

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route: Any = scope.get("route")
        name = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        self.metrics.requests.labels(name, method, str(status)).inc()
        self.metrics.latency.labels(name, method).observe(seconds)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": method,
                "route": name,
                "path": scope["path"],
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
            },
        )
