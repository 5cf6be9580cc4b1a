"""The KEDA ScaledJob's pod, run with Docker as its spec says, against a real RabbitMQ.

KEDA itself needs a cluster; what it starts does not. RabbitMQ comes from Debian's package, in
an image built here on the same base image (no registry is needed). The test puts the name of a
dataset on the queue, runs the ScaledJob's container once, and checks that the message was
taken and the dataset scored; a second run finds the queue empty and scores nothing.
"""

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from .conftest import Build, docker_support, on_worker
from .kubelet import Cluster, docker_options
from .test_deploy import SLUG, find, kustomize, overlay_dir, pod_specs

pytestmark = on_worker("3.11")

RABBITMQ_IMAGE = "rabbitmq-debian:test"
# Debian's RabbitMQ with the management API (the HTTP API KEDA's `http` protocol and the
# consumer use), reachable from other containers with the default user.
RABBITMQ_DOCKERFILE = """\
FROM python:3.11-slim
RUN apt-get update -q \\
    && apt-get install -y -q --no-install-recommends rabbitmq-server \\
    && rm -rf /var/lib/apt/lists/* \\
    && rabbitmq-plugins enable --offline rabbitmq_management \\
    && echo "loopback_users = none" > /etc/rabbitmq/rabbitmq.conf
USER rabbitmq
CMD ["rabbitmq-server"]
"""
QUEUE = "iris_classifier-datasets"


def build_rabbitmq(docker: Any) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        data = RABBITMQ_DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    docker.images.build(fileobj=context, custom_context=True, tag=RABBITMQ_IMAGE, rm=True)


@pytest.fixture(scope="module")
def rabbitmq(docker: Any) -> Iterator[tuple[str, str, str]]:
    """A running RabbitMQ on a network of its own; yields the network, the management URL
    on the host and the broker's name on the network."""
    build_rabbitmq(docker)
    network = docker.networks.create(f"keda-test-{time.time_ns()}")
    port = docker_support.free_port()
    broker = docker.containers.run(
        RABBITMQ_IMAGE,
        detach=True,
        name=f"rabbitmq-{time.time_ns()}",
        network=network.name,
        ports={"15672/tcp": ("127.0.0.1", port)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/overview", auth=("guest", "guest")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(broker.logs().decode(errors="replace")[-3000:])
            time.sleep(0.5)
        yield network.name, url, broker.name
    finally:
        broker.remove(force=True)
        network.remove()


def queue_url(management: str) -> str:
    return f"{management}/api/queues/{quote('/', safe='')}/{QUEUE}"


def publish(management: str, body: str) -> None:
    auth = ("guest", "guest")
    assert httpx.put(queue_url(management), json={"durable": True}, auth=auth).is_success
    published = httpx.post(
        f"{management}/api/exchanges/{quote('/', safe='')}/amq.default/publish",
        json={
            "routing_key": QUEUE,
            "payload": body,
            "payload_encoding": "string",
            "properties": {},
        },
        auth=auth,
    )
    assert published.json() == {"routed": True}


def wait_for_messages(management: str, expected: int, timeout: float = 30) -> None:
    """Until the queue holds `expected` messages (the management API's counts are refreshed
    every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        queue = httpx.get(queue_url(management), auth=("guest", "guest")).json()
        if queue.get("messages") == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{QUEUE} holds {queue.get('messages')}, not {expected}")
        time.sleep(0.5)


def test_the_scaled_job_takes_a_dataset_off_the_queue_and_scores_it(
    docker: Any, build: Build, rabbitmq: tuple[str, str, str], tmp_path: Path
) -> None:
    network, management, broker = rabbitmq
    project, tag = build("3.11")
    objects = kustomize(overlay_dir(project, "events"))
    scaled_job = find(objects, "ScaledJob")
    assert scaled_job["spec"]["triggers"][0]["metadata"]["queueName"] == QUEUE
    [pod] = pod_specs(scaled_job)
    data = tmp_path / "data"
    (data / "input" / "day-1").mkdir(parents=True)
    (data / "scores").mkdir()
    for folder in (data, data / "input", data / "input" / "day-1", data / "scores"):
        folder.chmod(0o777)
    features = pd.read_csv(project / "data" / "sample.csv")
    features.to_csv(data / "input" / "day-1" / "a.csv", index=False)
    cluster = Cluster(
        objects,
        tmp_path,
        claims={f"{SLUG}-data": data},
        secrets={f"{SLUG}-rabbitmq": {"host": f"http://guest:guest@{broker}:15672/"}},
    )
    publish(management, "day-1")
    wait_for_messages(management, 1)

    outputs = []
    for _ in range(2):  # the second run finds the queue empty
        consumer = docker_options(pod, "predict", cluster, tag)
        container = docker.containers.run(**consumer.options, network=network)
        try:
            code = container.wait(timeout=120)["StatusCode"]
            outputs.append(container.logs().decode(errors="replace"))
        finally:
            container.remove(force=True)
        assert code == 0, outputs[-1]
    assert "scoring day-1 (from queue iris_classifier-datasets)" in outputs[0], outputs[0]
    assert "queue iris_classifier-datasets is empty: nothing to score" in outputs[1], outputs[1]
    wait_for_messages(management, 0)
    success = json.loads((data / "scores" / "day-1" / "_SUCCESS").read_text())
    assert success["rows"] == len(features)
