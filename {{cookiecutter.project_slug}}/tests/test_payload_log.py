"""Payload logging to a CloudEvents sink that the tests start on 127.0.0.1 (and to one that is
down, and one that hangs): request and response events in KServe's format with one id, only
the prediction routes, sampled, and never in the way of a prediction."""

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve import payload_log
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import EXAMPLE, metric, v2_tensors, wait_until_ready
from .docker_support import free_port

Received = list[tuple[dict[str, str], bytes]]


@pytest.fixture
def sink() -> Iterator[tuple[str, Received, threading.Event]]:
    """A CloudEvents sink: its URL, what it received, and a gate that, cleared, makes it hang."""
    received: Received = []
    gate = threading.Event()
    gate.set()

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            gate.wait()
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", received, gate
    gate.set()
    server.shutdown()
    server.server_close()


def until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


def logging_to(trained: Settings, url: str, **more: object) -> TestClient:
    return TestClient(create_app(trained.model_copy(update={"payload_log_url": url, **more})))


def test_each_prediction_gives_a_request_and_a_response_event_with_one_id(
    trained: Settings, sink: tuple[str, Received, threading.Event]
) -> None:
    url, received, _gate = sink
    with logging_to(trained, url, pod_namespace="team-a") as client:
        wait_until_ready(client)
        answer = client.post("/predict", json=EXAMPLE, headers={"x-request-id": "req-1"})
        assert answer.status_code == 200
        until(lambda: len(received) == 2)
        client.get("/readyz")
        client.get("/metadata")
        infer = client.post(
            f"/v2/models/{PROJECT_NAME}/infer", json={"inputs": v2_tensors([EXAMPLE])}
        )
        assert infer.status_code == 200
        until(lambda: len(received) == 4)
        # The sink has the event before its sender hears the answer and counts it as sent.
        until(lambda: sent(client) == 4)
    request, response = sorted(received[:2], key=lambda event: event[0]["ce-type"])
    assert request[0]["ce-type"] == "org.kubeflow.serving.inference.request"
    assert response[0]["ce-type"] == "org.kubeflow.serving.inference.response"
    for headers, _body in (request, response):
        assert headers["ce-id"] == "req-1" and headers["ce-specversion"] == "1.0"
        assert headers["ce-inferenceservicename"] == PROJECT_NAME
        assert headers["ce-namespace"] == "team-a" and headers["ce-component"] == "predictor"
        assert headers["ce-source"].endswith("/predict") and headers["ce-time"].endswith("Z")
        assert headers["content-type"] == "application/json"
    assert request[1] == httpx.Request("POST", "/", json=EXAMPLE).content
    assert response[1] == answer.content
    v2_ids = {headers["ce-id"] for headers, _ in received[2:]}
    assert v2_ids == {infer.headers["x-request-id"]}, "the V2 route, with its generated id"


def sent(client: TestClient) -> float:
    return metric(client.get("/metrics").text, "payload_log_events_total", outcome="sent")


def test_sampling_sends_the_share_asked_for(
    trained: Settings, sink: tuple[str, Received, threading.Event]
) -> None:
    url, received, _gate = sink
    with logging_to(trained, url, payload_log_sample=0.0) as client:
        wait_until_ready(client)
        for _ in range(20):
            assert client.post("/predict", json=EXAMPLE).status_code == 200
    assert received == []


def test_a_dead_sink_costs_no_prediction_and_is_counted(
    trained: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender rests after a failure: the queue fills and drops, cheaply."""
    monkeypatch.setattr(payload_log, "QUEUE_PAIRS", 2)
    dead = f"http://127.0.0.1:{free_port()}/events"  # nothing listens there
    with logging_to(trained, dead) as client:
        wait_until_ready(client)
        for _ in range(20):
            assert client.post("/predict", json=EXAMPLE).status_code == 200

        def counted(outcome: str) -> float:
            return metric(client.get("/metrics").text, "payload_log_events_total", outcome=outcome)

        until(lambda: counted("failed") >= 1)
        assert counted("dropped") >= 2 * (20 - 4)


def test_a_hanging_sink_never_holds_a_prediction_and_drops_are_counted(
    trained: Settings,
    sink: tuple[str, Received, threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received, gate = sink
    gate.clear()  # the sink takes events and never answers
    monkeypatch.setattr(payload_log, "QUEUE_PAIRS", 2)
    with logging_to(trained, url) as client:
        wait_until_ready(client)
        for _ in range(30):
            assert client.post("/predict", json=EXAMPLE).status_code == 200
        metrics = client.get("/metrics").text
        assert received == []  # all 30 answered while the sink held the first event
        assert metric(metrics, "payload_log_events_total", outcome="dropped") >= 2 * (30 - 3)
    gate.set()


def test_the_url_is_shown_without_credentials(trained: Settings) -> None:
    settings = trained.model_copy(
        update={"payload_log_url": "https://user:s3cret@sink.example/events?token=abc"}
    )
    shown = settings.public()["PAYLOAD_LOG_URL"]
    assert shown == "https://sink.example/events"
