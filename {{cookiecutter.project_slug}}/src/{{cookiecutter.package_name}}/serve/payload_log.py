"""Payload logging: each sampled prediction request and its response, sent as two CloudEvents in
KServe's inference logger format to PAYLOAD_LOG_URL, for drift and audit pipelines.

The events are HTTP binary-mode CloudEvents 1.0: the body is the payload as it was sent or
answered, and the headers carry `ce-id` (the request id, the same in both events and in the
response's `x-request-id`), `ce-type` (`org.kubeflow.serving.inference.request` or
`.response`), `ce-source`, `ce-time`, and KServe's extensions `ce-inferenceservicename`,
`ce-namespace`, `ce-component` and `ce-endpoint`.

Nothing of this is on the request path: the middleware only puts the pair on a bounded queue,
and one thread sends it. A full queue (a slow or dead sink) drops the pair; every event's fate
is counted in /metrics (`payload_log_events_total{outcome="sent|failed|dropped"}`).
"""

import contextlib
import http.client
import logging
import queue
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.settings import PROJECT_NAME
from ..core.uris import redacted
from .metrics import Metrics

log = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
QUEUE_PAIRS = 1000  # request-response pairs waiting at most; more are dropped
SEND_TIMEOUT_S = 2.0
REST_S, MAX_REST_S = 1.0, 30.0  # after a failed send, before the next attempt
# The routes whose payloads are logged: every HTTP prediction route (gRPC's are not logged).
LOGGED_PATHS = ("/predict", "/invocations")
LOGGED_V2_SUFFIX = "/infer"

Event = tuple[dict[str, str], bytes]


def logged(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["method"] == "POST" and (
        path in LOGGED_PATHS or (path.startswith("/v2/models/") and path.endswith(LOGGED_V2_SUFFIX))
    )


class PayloadLogger:
    """The queue and the thread that sends its events to `url`."""

    def __init__(self, url: str, sample: float, namespace: str, metrics: Metrics) -> None:
        self.url, self.sample, self.namespace = url, sample, namespace
        self.sent, self.failed, self.dropped = (
            metrics.payload_events.labels(outcome) for outcome in ("sent", "failed", "dropped")
        )
        self._sender = Sender(url)  # a URL it cannot send to stops the start
        self._queue: queue.Queue[tuple[Event, Event] | None] = queue.Queue(QUEUE_PAIRS)
        self._thread = threading.Thread(target=self._run, name="payload-log", daemon=True)

    def sampled(self) -> bool:
        """Whether to log the request now arriving (PAYLOAD_LOG_SAMPLE)."""
        return self.sample >= 1.0 or random.random() < self.sample

    def record(
        self, request_id: str, source: str, request: tuple[bytes, str], response: tuple[bytes, str]
    ) -> None:
        """Queue one sampled request and its response; never waits."""
        if self._queue.full():  # before building the events: a dead sink costs little
            self.dropped.inc(2)
            return
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        pair = (
            self._event(request_id, REQUEST_TYPE, source, stamp, *request),
            self._event(request_id, RESPONSE_TYPE, source, stamp, *response),
        )
        try:
            self._queue.put_nowait(pair)
        except queue.Full:
            self.dropped.inc(2)

    def _event(
        self, request_id: str, kind: str, source: str, stamp: str, body: bytes, content_type: str
    ) -> Event:
        headers = {
            "ce-specversion": "1.0",
            "ce-id": request_id,
            "ce-type": kind,
            "ce-source": source,
            "ce-time": stamp,
            "ce-inferenceservicename": PROJECT_NAME,
            "ce-namespace": self.namespace,
            "ce-component": "predictor",
            "ce-endpoint": "default",
            "Content-Type": content_type or "application/json",
        }
        return headers, body

    def _run(self) -> None:
        """Send what is queued over one kept-alive connection. After a failure the thread
        rests (1 s, doubling up to 30 s) before it tries again: a dead sink costs a connection
        attempt now and then, not one per event, and meanwhile the full queue drops."""
        sender, rest = self._sender, 0.0
        while (pair := self._queue.get()) is not None:
            for headers, body in pair:
                try:
                    sender.send(headers, body)
                    self.sent.inc()
                    rest = 0.0
                except (OSError, http.client.HTTPException, ValueError) as error:
                    self.failed.inc()
                    sender.close()
                    rest = min(max(rest * 2, REST_S), MAX_REST_S)
                    log.debug("payload event not delivered", extra={"reason": str(error)})
            if rest:
                time.sleep(rest)

    async def start(self, loading: Any) -> None:
        """A companion of the app (serve/app.py): the sending thread runs while the app does."""
        self._thread.start()

    async def stop(self) -> None:
        """Ask the thread to stop after what is queued. It is a daemon: events still queued
        when the process exits are lost, never waited for."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)


class Sender:
    """POSTs to one URL over a connection kept open between events."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            port = -1
        if port == -1:
            raise ValueError(
                f"PAYLOAD_LOG_URL must be an http:// or https:// URL without a user or "
                f"password, not {redacted(url)!r}"
            )
        self.https, self.host, self.port = parts.scheme == "https", parts.hostname or "", port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.connection: http.client.HTTPConnection | None = None

    def send(self, headers: dict[str, str], body: bytes) -> None:
        reused = self.connection is not None
        try:
            self._post(headers, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            self.close()  # the sink closed the idle connection: once more, on a new one
            self._post(headers, body)

    def _post(self, headers: dict[str, str], body: bytes) -> None:
        if self.connection is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.connection = kind(self.host, self.port, timeout=SEND_TIMEOUT_S)
        self.connection.request("POST", self.path, body, headers)
        response = self.connection.getresponse()
        response.read()
        if response.status >= 300:
            raise ValueError(f"the sink answered {response.status}")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class PayloadLogMiddleware:
    """Takes a copy of each logged route's request and response bodies for the logger. It
    runs outside the request middleware, so the response carries its `x-request-id`."""

    def __init__(self, app: ASGIApp, logger: PayloadLogger) -> None:
        self.app, self.logger = app, logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logged(scope) or not self.logger.sampled():
            await self.app(scope, receive, send)
            return
        request_parts: list[bytes] = []
        response_parts: list[bytes] = []
        answer: dict[str, str] = {}

        async def copying_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_parts.append(message.get("body", b""))
            return message

        async def copying_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                for key, value in message.get("headers", []):
                    answer[key.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                response_parts.append(message.get("body", b""))
            await send(message)

        await self.app(scope, copying_receive, copying_send)
        request_id = answer.get("x-request-id", "")
        self.logger.record(
            request_id,
            _source(scope),
            (b"".join(request_parts), _content_type(scope)),
            (b"".join(response_parts), answer.get("content-type", "")),
        )


def _content_type(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return str(value.decode("latin-1"))
    return ""


def _source(scope: Scope) -> str:
    server: Any = scope.get("server") or ("localhost", 8080)
    return f"http://{server[0]}:{server[1]}{scope['path']}"
