"""Running the project's image in tests: build once, start containers, wait for readiness.

Set IMAGE to test an image that is already built; IMAGE_TARGET=serve tests the slim serving
image, which needs the full one (TRAINING_IMAGE, or built) to train the models it serves. Without a Docker Engine the container
tests skip, except when REQUIRE_DOCKER=1 (as in CI), where that is a failure.
"""

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
CONTAINER_PORT = "8080/tcp"

MODEL_MOUNT = "/opt/ml/model"


def shared_dir(path: Path) -> Path:
    """A folder the container's non-root user may write, like a volume prepared for it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def bind(host: Path, container: str, mode: str = "rw") -> dict[str, dict[str, str]]:
    return {str(host): {"bind": container, "mode": mode}}


def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(version="auto", timeout=600)  # a cold build takes minutes
        client.ping()
    except Exception as error:
        message = f"no Docker Engine answers ({error})"
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"{message}, and REQUIRE_DOCKER=1 forbids skipping container tests")
        pytest.skip(message)
    return client


def build_image(client: Any, tag: str, target: str = "runtime") -> Any:
    image, _logs = client.images.build(
        path=str(PROJECT_DIR), tag=tag, target=target, rm=True, forcerm=True
    )
    return image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    container: Any
    url: str
    started: float

    def logs(self) -> str:
        return str(self.container.logs().decode(errors="replace"))


def wait_for(url: str, status: int = 200, timeout: float = 30.0) -> float:
    """Seconds until GET url answers `status`; fails the test after `timeout`."""
    started = time.perf_counter()
    last: object = None
    while time.perf_counter() - started < timeout:
        try:
            last = httpx.get(url, timeout=1).status_code
            if last == status:
                return time.perf_counter() - started
        except httpx.TransportError as error:
            last = error
        time.sleep(0.02)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s (last: {last})")


def wait_for_log(container: Any, text: str, timeout: float = 60.0) -> None:
    """Return once the container's output holds `text`; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while text not in (logs := container.logs().decode(errors="replace")):
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{logs}"
        time.sleep(0.05)


@contextmanager
def serving(client: Any, image: str, ready: bool = True, **run: Any) -> Iterator[Server]:
    """Start the image's server on a free 127.0.0.1 port; stop and remove it afterwards."""
    port = free_port()
    started = time.perf_counter()
    container = client.containers.run(
        image, detach=True, ports={CONTAINER_PORT: ("127.0.0.1", port)}, **run
    )
    server = Server(container, f"http://127.0.0.1:{port}", started)
    try:
        wait_for(server.url + ("/readyz" if ready else "/livez"))
        yield server
    except BaseException:
        print(server.logs())
        raise
    finally:
        container.remove(force=True)


def run_job(client: Any, image: str, command: list[str], **run: Any) -> tuple[int, str]:
    """Run a job container to the end; returns its exit code and its output."""
    container = client.containers.run(image, command, detach=True, **run)
    try:
        code = container.wait(timeout=300)["StatusCode"]
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
