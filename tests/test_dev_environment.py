"""The shared dev environment: the Dockerfile's dev stage, `make jupyter`, the dev container
(@devcontainers/cli, up then exec), and `make sbom` from it. They share one render and its
dev image, so they run on one worker."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, UNIT_TESTS, docker_support, render
from .test_image import make, pins

pytestmark = pytest.mark.xdist_group("dev-environment")

DEVCONTAINER = ROOT / "build/tools/node_modules/.bin/devcontainer"
IMAGES = ["IMAGE=iris-classifier:dev-env-test", "DEV_IMAGE=iris-classifier:dev-env-test-dev"]
JUPYTER_URL = re.compile(r"JupyterLab: http://127\.0\.0\.1:(\d+)/lab\?token=([0-9a-f]{32})")


@pytest.fixture(scope="module")
def project(docker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A render with its runtime image and its dev image built. The dev container's own
    images (the CLI names them after the folder, new in each run) are removed afterwards."""
    folder = render(tmp_path_factory.mktemp("dev-environment"))
    before = {tag for image in docker.images.list() for tag in image.tags}
    for target in ("build", "dev-image"):
        result = make(folder, target, *IMAGES)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield folder
    for container in docker.containers.list(
        all=True, filters={"label": f"devcontainer.local_folder={folder}"}
    ):
        container.remove(force=True)
    for image in docker.images.list():
        for tag in set(image.tags) - before:
            if tag.startswith("vsc-"):
                docker.images.remove(tag, force=True)


def test_dev_stage_adds_the_tools_the_runtime_image_does_not_have(
    docker: Any, project: Path
) -> None:
    script = (
        "import importlib.util as u; "
        "print([u.find_spec(m) is not None for m in ('jupyterlab', 'pytest', 'mypy', 'fastapi')])"
    )
    dev = docker.containers.run(
        "iris-classifier:dev-env-test-dev", ["python", "-c", script], remove=True
    )
    assert dev.decode().strip() == "[True, True, True, True]"
    runtime = docker.containers.run(
        "iris-classifier:dev-env-test", ["-c", script], entrypoint="python", remove=True
    )
    assert runtime.decode().strip() == "[False, False, False, True]"
    config = docker.images.get("iris-classifier:dev-env-test-dev").attrs["Config"]
    assert config["User"] == "1000" and "8888/tcp" in config["ExposedPorts"]


def test_make_jupyter_serves_jupyterlab_behind_its_token(project: Path, tmp_path: Path) -> None:
    port = docker_support.free_port()
    output = tmp_path / "jupyter.log"
    with output.open("w") as log:
        server = subprocess.Popen(
            ["make", "--no-print-directory", "jupyter", f"JUPYTER_PORT={port}", *IMAGES],
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not (url := JUPYTER_URL.search(output.read_text())):
            assert server.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        assert url.group(1) == str(port)
        token = url.group(2)
        assert wait_for_status(f"http://127.0.0.1:{port}/api/status?token={token}") == 200
        assert http_status(f"http://127.0.0.1:{port}/api/status") == 403  # no token, no entry
        assert http_status(url.group(0).removeprefix("JupyterLab: ")) == 200
    finally:
        subprocess.run(["docker", "stop", "iris-classifier-jupyter"], capture_output=True)
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def test_devcontainer_up_then_exec_runs_the_unit_tests(project: Path) -> None:
    if not DEVCONTAINER.exists():
        pytest.fail("the Dev Containers CLI is not installed: run `make node-tools`")
    up = subprocess.run(
        [str(DEVCONTAINER), "up", "--workspace-folder", str(project)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    outcome = json.loads(up.stdout.strip().splitlines()[-1])
    assert outcome["outcome"] == "success" and outcome["remoteWorkspaceFolder"] == "/app"
    tests = subprocess.run(
        [str(DEVCONTAINER), "exec", "--workspace-folder", str(project), "python", *UNIT_TESTS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert re.search(r"\d+ passed", tests.stdout) and "failed" not in tests.stdout
    # What the container writes into the project belongs to the one who opened it.
    written = project / "written-in-the-dev-container"
    touch = subprocess.run(
        [
            str(DEVCONTAINER),
            "exec",
            "--workspace-folder",
            str(project),
            "touch",
            f"/app/{written.name}",
        ],
        capture_output=True,
        text=True,
    )
    assert touch.returncode == 0, touch.stdout + touch.stderr
    assert written.stat().st_uid == os.getuid()


def test_make_sbom_lists_the_images_packages(project: Path) -> None:
    result = make(project, "sbom", *IMAGES)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sbom = json.loads((project / "build/sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    components = {
        (re.sub(r"[-_.]+", "-", c["name"]).lower(), c["version"]) for c in sbom["components"]
    }
    locked = {(re.sub(r"[-_.]+", "-", n), v) for n, v in pins(project / "requirements.lock")}
    assert components <= locked, components - locked
    names = {name for name, _ in components}
    assert {"fastapi", "scikit-learn", "numpy"} <= names
    assert not {"pytest", "jupyterlab", "cyclonedx-bom"} & names, "dev tools are not in the image"


def wait_for_status(url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_status(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
