"""The generated `deploy/compose.yaml`, run for real with Docker Compose against the image:
up, healthy, a prediction, the train profile, the new model served after a restart, and down
with nothing left behind."""

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Build, docker_support, on_worker, project_data

pytestmark = on_worker("3.11")  # the 3.11 image is built once, on one worker


def compose_command() -> list[str]:
    """The Compose CLI `make kube-tools` made sure of: the plugin, else docker-compose."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no Docker Compose: run `make kube-tools`")


class Stack:
    def __init__(self, project: Path, name: str, image: str, port: int) -> None:
        self.project, self.name, self.port = project, name, port
        self.env = {
            "IMAGE": image,
            "PORT": str(port),
            "GRPC_PORT": str(docker_support.free_port()),
            "DASK_DASHBOARD_PORT": str(docker_support.free_port()),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }
        self.timings: dict[str, float] = {}

    def __call__(self, *args: str, step: str | None = None) -> str:
        command = [*compose_command(), "-p", self.name, "-f", "deploy/compose.yaml", *args]
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=300
        )
        if step:
            self.timings[step] = round(time.monotonic() - started, 1)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def containers(self, docker: Any, service: str) -> list[Any]:
        return list(
            docker.containers.list(
                all=True,
                filters={
                    "label": [
                        f"com.docker.compose.project={self.name}",
                        f"com.docker.compose.service={service}",
                    ]
                },
            )
        )

    def server(self, docker: Any) -> Any:
        [container] = self.containers(docker, "server")
        return container

    def wait_dask_workers(self, docker: Any, count: int, timeout: float = 60) -> None:
        """Wait until the scheduler has registered `count` workers: `up -d` returns when the
        worker containers start, before they have connected."""
        [scheduler] = self.containers(docker, "dask-scheduler")
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            logs = scheduler.logs().decode(errors="replace")
            if logs.count("Register worker") >= count:
                return
            time.sleep(0.5)
        raise AssertionError(f"fewer than {count} Dask workers within {timeout} s:\n{logs}")

    def wait_healthy(self, docker: Any, step: str, timeout: float = 90) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            container = self.server(docker)
            if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                self.timings[step] = round(time.monotonic() - started, 1)
                return
            time.sleep(0.5)
        logs = self.server(docker).logs().decode(errors="replace")[-4000:]
        raise AssertionError(f"the server never became healthy within {timeout} s:\n{logs}")

    def model_version(self) -> str:
        return str(
            httpx.get(f"http://127.0.0.1:{self.port}/metadata").json()["model"]["model_version"]
        )


def leftovers(docker: Any, name: str) -> list[str]:
    label = {"label": f"com.docker.compose.project={name}"}
    return (
        [c.name for c in docker.containers.list(all=True, filters=label)]
        + [v.name for v in docker.volumes.list(filters=label)]
        + [n.name for n in docker.networks.list(filters=label)]
    )


def test_the_compose_stack_serves_trains_and_leaves_nothing_behind(
    docker: Any, build: Build, capsys: pytest.CaptureFixture[str]
) -> None:
    project, tag = build("3.11")
    name = f"compose-test-{time.time_ns()}"
    stack = Stack(project, name, tag, docker_support.free_port())
    # The train profile trains on data/train: the bundled data the baked model learnt from,
    # and here a second file of half its rows again, so that it fits a model of its own.
    data = project_data(project)
    extra = project / "data" / "train" / "compose-test-extra.csv"
    data.labelled()[::2].to_csv(extra, index=False)
    rows = len(data.rows) + len(data.rows[::2])
    try:
        stack("up", "-d", "server", step="up")
        stack.wait_healthy(docker, "healthy after up")
        row = data.example
        answer = httpx.post(f"http://127.0.0.1:{stack.port}/predict", json=row)
        assert answer.status_code == 200, answer.text
        baked = stack.model_version()
        logs = stack("--profile", "train", "run", "--rm", "train", step="train")
        assert f"loaded {rows} rows from 2 file(s)" in logs, logs
        stack("restart", "server", step="restart")
        stack.wait_healthy(docker, "healthy after restart")
        assert stack.model_version() != baked, "the server must load the model `train` wrote"
    finally:
        stack("--profile", "train", "down", "--volumes", "--remove-orphans", step="down")
        extra.unlink()
    assert leftovers(docker, name) == []
    with capsys.disabled():
        print(f"\ncompose timings (s): {json.dumps(stack.timings)}")


def test_the_dask_profile_scores_the_data_folder_on_a_local_cluster(
    docker: Any, build: Build
) -> None:
    import pandas as pd

    project, tag = build("3.11")
    name = f"compose-dask-{time.time_ns()}"
    stack = Stack(project, name, tag, docker_support.free_port())
    data = project / "data"
    (data / "input").mkdir(exist_ok=True)
    rows = pd.read_csv(data / "sample.csv")
    for k in range(4):
        rows.assign(id=[f"{k}-{i}" for i in range(len(rows))]).to_csv(
            data / "input" / f"{k}.csv", index=False
        )
    for folder in (data, data / "input"):
        folder.chmod(0o777)  # the image's user writes data/scores
    try:
        stack("--profile", "dask", "up", "-d", "--scale", "dask-worker=2", "dask-worker")
        stack.wait_dask_workers(docker, 2)
        logs = stack("--profile", "dask", "run", "--rm", "score")
        assert "workers 2" in logs, logs
        success = json.loads((data / "scores" / "_SUCCESS").read_text())
        assert success["rows"] == 4 * len(rows)
        scored = pd.concat(
            [pd.read_csv(p) for p in sorted((data / "scores").glob("part-*.csv"))],
            ignore_index=True,
        )
        assert scored["id"].tolist() == [f"{k}-{i}" for k in range(4) for i in range(len(rows))]
    finally:
        stack("--profile", "dask", "down", "--volumes", "--remove-orphans")
        shutil.rmtree(data / "input")
        shutil.rmtree(data / "scores", ignore_errors=True)
    assert leftovers(docker, name) == []
