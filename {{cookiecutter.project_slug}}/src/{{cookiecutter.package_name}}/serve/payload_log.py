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
import logging
import queue
import random
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.settings import PROJECT_NAME
from .metrics import Metrics

log = logging.getLogger(__name__)

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
QUEUE_PAIRS = 1000  # request-response pairs waiting at most; more are dropped
SEND_TIMEOUT_S = 2.0
# The routes whose payloads are logged: every prediction route of every protocol.
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
        self._queue: queue.Queue[tuple[Event, Event] | None] = queue.Queue(QUEUE_PAIRS)
        self._thread = threading.Thread(target=self._run, name="payload-log", daemon=True)
        self._thread.start()

    def record(
        self, request_id: str, source: str, request: tuple[bytes, str], response: tuple[bytes, str]
    ) -> None:
        """Queue one request and its response, if sampled; never waits."""
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        time = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        pair = (
            self._event(request_id, REQUEST_TYPE, source, time, *request),
            self._event(request_id, RESPONSE_TYPE, source, time, *response),
        )
        try:
            self._queue.put_nowait(pair)
        except queue.Full:
            self.dropped.inc(2)

    def _event(
        self, request_id: str, kind: str, source: str, time: str, body: bytes, content_type: str
    ) -> Event:
        headers = {
            "ce-specversion": "1.0",
            "ce-id": request_id,
            "ce-type": kind,
            "ce-source": source,
            "ce-time": time,
            "ce-inferenceservicename": PROJECT_NAME,
            "ce-namespace": self.namespace,
            "ce-component": "predictor",
            "ce-endpoint": "default",
            "Content-Type": content_type or "application/json",
        }
        return headers, body

    def _run(self) -> None:
        while (pair := self._queue.get()) is not None:
            for headers, body in pair:
                request = urllib.request.Request(self.url, body, headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S):
                        pass
                    self.sent.inc()
                except (urllib.error.URLError, OSError, ValueError) as error:
                    self.failed.inc()
                    log.debug("payload event not delivered", extra={"reason": str(error)})

    async def start(self, loading: Any) -> None:
        """A companion of the app (serve/app.py): its thread already runs."""

    async def stop(self) -> None:
        """Stop the thread after what is queued; what a dead sink holds up is dropped."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)


class PayloadLogMiddleware:
    """Takes a copy of each logged route's request and response bodies for the logger. It
    runs outside the request middleware, so the response carries its `x-request-id`."""

    def __init__(self, app: ASGIApp, logger: PayloadLogger) -> None:
        self.app, self.logger = app, logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logged(scope):
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
