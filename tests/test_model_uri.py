"""MODEL_URI against a real S3-compatible server (moto's standalone server, started here): the
slim serving image, built once, serves a model it fetches from a bucket, through the same Arrow
client code that reaches AWS or MinIO, and refuses a missing or tampered one with the reason in
/readyz. `predict` in the image fetches the same way. The start-up with a fetched model is
printed beside the start-up with the baked one."""

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.fs as pafs
import pytest

from .conftest import Build, docker_support, on_worker

BUCKET = "models"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on a free port of 127.0.0.1, with the bucket made."""
    port = docker_support.free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        docker_support.wait_for(f"{endpoint}/moto-api/", timeout=30)
        store(endpoint).create_dir(BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def store(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        allow_bucket_creation=True,
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
    )


def upload(endpoint: str, folder: Path, prefix: str) -> None:
    filesystem = store(endpoint)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with filesystem.open_output_stream(
                f"{BUCKET}/{prefix}/{path.relative_to(folder)}"
            ) as out:
                out.write(path.read_bytes())


def baked_model(docker: Any, image: str, into: Path) -> Path:
    """The model the full image baked, copied out of it."""
    into.mkdir(parents=True)
    into.chmod(0o777)
    docker.containers.run(
        image,
        ["-c", "cp -r /opt/ml/model/. /out/"],
        entrypoint="sh",
        volumes={str(into): {"bind": "/out", "mode": "rw"}},
        remove=True,
    )
    return into


@contextmanager
def fetching(docker: Any, image: str, endpoint: str, uri: str) -> Iterator[tuple[str, float, Any]]:
    """The image's server with MODEL_URI=`uri` on the host's network (free ports), once it
    answers /livez: its URL, when `docker run` was called (perf_counter) and the container."""
    port, grpc_port = docker_support.free_port(), docker_support.free_port()
    started = time.perf_counter()
    container = docker.containers.run(
        image,
        detach=True,
        network_mode="host",
        environment={
            **CREDENTIALS,
            "MODEL_URI": uri,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "PORT": str(port),
            "GRPC_PORT": str(grpc_port),
            "HOST": "127.0.0.1",
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        docker_support.wait_for(f"{url}/livez", timeout=60)
        yield url, started, container
    except BaseException:
        print(container.logs().decode(errors="replace"))
        raise
    finally:
        container.remove(force=True)


def settled(url: str, timeout: float = 60) -> httpx.Response:
    """/readyz once the model is loaded or has failed to load."""
    deadline = time.monotonic() + timeout
    while (answer := httpx.get(f"{url}/readyz")).json()["status"] == "loading":
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)
    return answer


@on_worker("3.11")
def test_the_slim_image_serves_a_model_it_fetches_from_s3(
    docker: Any, build: Build, s3_endpoint: str, tmp_path: Path
) -> None:
    project, full = build("3.11")
    _project, slim = build("3.11", target="serve")
    model = baked_model(docker, full, tmp_path / "model")
    upload(s3_endpoint, model, "iris/v1")
    with docker_support.serving(docker, slim) as baked:
        baked_ready = time.perf_counter() - baked.started  # serving() waited for /readyz
        row = pd.read_csv(project / "data" / "sample.csv").head(1).to_dict("records")
        expected = httpx.post(f"{baked.url}/predict", json=row).json()

    with fetching(docker, slim, s3_endpoint, f"s3://{BUCKET}/iris/v1") as (url, started, _):
        assert settled(url).status_code == 200
        fetched_ready = time.perf_counter() - started
        metadata = httpx.get(f"{url}/metadata").json()
        assert metadata["source"] == f"s3://{BUCKET}/iris/v1"
        baked_metadata = json.loads((model / "metadata.json").read_text())
        assert metadata["model"]["model_version"] == baked_metadata["model_version"]
        assert httpx.post(f"{url}/predict", json=row).json() == expected
    print(
        f"start-up to /readyz: the baked model {baked_ready:.2f} s; "
        f"the model fetched from S3 {fetched_ready:.2f} s"
    )

    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    shutil.copy(project / "data" / "sample.csv", data / "in.csv")
    logs = docker.containers.run(
        slim,
        ["predict", "--input", "/data/in.csv", "--output", "/data/out.csv"],
        network_mode="host",
        environment={
            **CREDENTIALS,
            "MODEL_URI": f"s3://{BUCKET}/iris/v1",
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_REGION": "us-east-1",
        },
        volumes={str(data): {"bind": "/data", "mode": "rw"}},
        remove=True,
    ).decode()
    assert "predict: done" in logs, logs
    scored = pd.read_csv(data / "out.csv")
    assert len(scored) == len(pd.read_csv(data / "in.csv")) and scored["prediction"].notna().all()


@on_worker("3.11")
def test_a_missing_or_tampered_model_in_s3_is_never_served(
    docker: Any, build: Build, s3_endpoint: str, tmp_path: Path
) -> None:
    project, full = build("3.11")
    _project, slim = build("3.11", target="serve")
    row = pd.read_csv(project / "data" / "sample.csv").head(1).to_dict("records")
    model = baked_model(docker, full, tmp_path / "model")
    tampered = tmp_path / "tampered"
    shutil.copytree(model, tampered)
    onnx = tampered / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    upload(s3_endpoint, tampered, "iris/tampered")
    cases = {
        f"s3://{BUCKET}/iris/nothing-here": "no model there: nothing is stored under it",
        "s3://no-such-bucket/iris": "cannot fetch it",
        f"s3://{BUCKET}/iris/tampered": "does not match the hash in metadata.json",
    }
    for uri, problem in cases.items():
        with fetching(docker, slim, s3_endpoint, uri) as (url, _started, container):
            answer = settled(url)
            assert answer.status_code == 503 and answer.json()["status"] == "failed"
            assert problem in answer.json()["reason"], answer.text
            assert httpx.post(f"{url}/predict", json=row).status_code == 503
            logs = container.logs().decode(errors="replace")
            assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in logs + answer.text
