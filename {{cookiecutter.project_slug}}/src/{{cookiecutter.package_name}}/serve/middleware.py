"""ASGI middleware around every request: request id, auth, size limit, log line, metrics,
and our own JSON 500 (with the request id) for an error nothing else handled.

Plain ASGI rather than BaseHTTPMiddleware: it wraps every request, and plain ASGI adds the
least latency.
"""

import logging
import os
import time
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import authorized, is_public
from .errors import error_body
from .logs import AccessLog
from .metrics import Metrics

Headers = list[tuple[bytes, bytes]]

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """Raised while the body is read, so the app's own error handling answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than MAX_REQUEST_BYTES={limit} bytes")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        access_log: AccessLog,
        max_request_bytes: int,
        token: str | None,
    ) -> None:
        self.app, self.metrics, self.access_log = app, metrics, access_log
        self.max_bytes, self.token = max_request_bytes, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = (_header(scope, b"x-request-id") or os.urandom(16).hex())[:128]
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500
        answered = False
        self.metrics.in_flight.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                status, body, headers = refusal
                await _send_json(send, status, body, [*headers, id_header])
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
        except Exception:
            status = 500
            log.exception(
                "unhandled error", extra={"request_id": request_id, "path": scope["path"]}
            )
            if answered:  # too late for an error response: the connection is closed
                raise
            message = f"internal server error (request id {request_id})"
            body = orjson.dumps(error_body(scope["path"], message))
            await _send_json(send, 500, body, [id_header])
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _refusal(self, scope: Scope) -> tuple[int, bytes, Headers] | None:
        """A 401 or 413 answered before the app runs, or None to go on."""
        needs_token = self.token is not None and not is_public(scope["path"])
        if needs_token and not authorized(_header(scope, b"authorization"), self.token or ""):
            message = "missing or wrong bearer token: send 'Authorization: Bearer <API_TOKEN>'"
            body = orjson.dumps(error_body(scope["path"], message))
            return 401, body, [(b"www-authenticate", b"Bearer")]
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            body = orjson.dumps(error_body(scope["path"], BodyTooLarge(self.max_bytes).detail))
            return 413, body, []
        return None

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route: Any = scope.get("route")
        name = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        self.metrics.observe_request(name, method, status, seconds)
        self.access_log.write(
            request_id=request_id,
            method=method,
            route=name,
            path=scope["path"],
            status=status,
            latency_ms=round(seconds * 1000, 3),
        )


async def _send_json(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
