"""The image's contract, checked against real containers: three jobs, one image.

Run with `pytest -m container`. Builds the image once per session (or uses $IMAGE).
"""

import contextlib
import json
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.artifact import load_artifact
from {{ cookiecutter.package_name }}.core.model import MODEL_FILE
from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, TARGET
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings

from .conftest import (
    EXAMPLE,
    REFUSING,
    REGRESSION,
    REPORT_PLOTS,
    SCORE_COLUMNS,
    as_table,
    csv_line,
    predicted,
    predicted_rows,
    same_answers,
    training_data,
    training_table,
    v2_body,
    varied_rows,
    wrong_value,
)
from .docker_support import (
    MODEL_MOUNT,
    bind,
    free_port,
    run_job,
    serving,
    shared_dir,
    wait_for,
    wait_for_log,
)

DEFAULT_GRACEFUL_TIMEOUT = Settings.model_fields["graceful_timeout"].default
DOCKER_STOP_TIMEOUT = 10  # `docker stop`'s default, seconds before SIGKILL


def repeated(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """`rows` rows: the frame's, again and again."""
    return frame.iloc[np.arange(rows) % len(frame)].reset_index(drop=True)


pytestmark = pytest.mark.container

# --- the image itself ------------------------------------------------------------------


def test_image_metadata(docker: Any, image: str) -> None:
    config = docker.images.get(image).attrs["Config"]
    assert config["User"] == "10001"
    assert config["Entrypoint"][:2] == ["python", "-m"]
    assert config["Cmd"] == ["serve"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8081/tcp"}  # HTTP and gRPC
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    labels = config["Labels"]
    for key in ("version", "revision", "created", "source", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}" in labels


def test_runs_as_non_root_and_holds_no_build_leftovers(docker: Any, image: str) -> None:
    script = (
        "import os, pathlib, importlib.util as u; print(os.getuid()); "
        "print(u.find_spec('pip') is None); print(sorted(p.name for p in pathlib.Path('/app').iterdir()))"
    )
    output = docker.containers.run(image, ["-c", script], entrypoint="python", remove=True).decode()
    uid, no_pip, app_files = output.split("\n")[:3]
    assert uid == "10001"
    assert no_pip == "True"
    assert app_files == "['src']"


def test_help_exits_0(docker: Any, image: str) -> None:
    code, logs = run_job(docker, image, ["--help"])
    assert code == 0, logs
    for command in ("train", "predict", "serve"):
        assert f"    {command} " in logs, logs


USERS = pytest.mark.parametrize("user", ["54321:0", "54321:54321"], ids=["group-0", "own-group"])


@USERS
def test_serves_as_an_arbitrary_uid(docker: Any, image: str, user: str, example_label: Any) -> None:
    """OpenShift and some clusters run images under a UID they pick."""
    with serving(docker, image, user=user) as server:  # the baked model
        predictions = httpx.post(server.url + "/predict", json=EXAMPLE).json()["predictions"]
        assert same_answers(predictions, [example_label]), predictions


@pytest.mark.full_image
@USERS
def test_trains_as_an_arbitrary_uid(docker: Any, image: str, tmp_path: Path, user: str) -> None:
    model_dir = shared_dir(tmp_path / "model")
    code, logs = run_job(docker, image, ["train"], user=user, volumes=bind(model_dir, MODEL_MOUNT))
    assert code == 0, logs
    assert (model_dir / "metadata.json").stat().st_uid == int(user.split(":")[0])
    expected = predicted(load_artifact(model_dir).model, [EXAMPLE])  # what the model says
    with serving(docker, image, user=user, volumes=bind(model_dir, MODEL_MOUNT, "ro")) as server:
        predictions = httpx.post(server.url + "/predict", json=EXAMPLE).json()["predictions"]
        assert same_answers(predictions, expected), predictions


def test_healthcheck_is_healthy_with_a_model_and_unhealthy_without(
    docker: Any, image: str, tmp_path: Path
) -> None:
    test = docker.images.get(image).attrs["Config"]["Healthcheck"]["Test"]
    # The image's own check, run often, so the verdict comes within seconds.
    fast = {"test": test, "interval": 300_000_000, "timeout": 2_000_000_000, "retries": 1}
    fast["start_period"] = 1_000_000
    container = docker.containers.run(image, detach=True, healthcheck=fast)
    try:
        wait_for_health(container, "healthy")
    finally:
        container.remove(force=True)
    empty = bind(shared_dir(tmp_path / "empty"), MODEL_MOUNT)
    container = docker.containers.run(image, detach=True, healthcheck=fast, volumes=empty)
    try:
        wait_for_log(container, '"model not loaded"', timeout=30)
        time.sleep(1.0)  # a few checks after the server knows it has no model
        last = wait_for_health(container, "unhealthy")["Log"][-1]
        assert last["ExitCode"] != 0 and "503" in last["Output"], last
    finally:
        container.remove(force=True)


def wait_for_health(container: Any, status: str) -> dict[str, Any]:
    deadline = time.time() + 30
    while True:
        container.reload()
        health: dict[str, Any] = container.attrs["State"]["Health"]
        if health["Status"] == status:
            return health
        assert time.time() < deadline, f"not {status}: {health}"
        time.sleep(0.2)


# --- serve -----------------------------------------------------------------------------


def test_serves_the_baked_model_with_no_mounts(docker: Any, image: str, example_label: Any) -> None:
    """The image bakes a model trained on data/train/ with the default hyperparameters: the
    model the unit tests train, which answers EXAMPLE with example_label."""
    with serving(docker, image) as server:
        response = httpx.post(server.url + "/predict", json=EXAMPLE)
        assert response.status_code == 200
        predictions = response.json()["predictions"]
        assert same_answers(predictions, [example_label]), predictions
        assert httpx.get(server.url + "/docs").status_code == 200
        health = server.container.exec_run(
            docker.images.get(image).attrs["Config"]["Healthcheck"]["Test"][1:]
        )
        assert health.exit_code == 0, health.output


def test_bad_predict_body_is_422(docker: Any, image: str) -> None:
    with serving(docker, image) as server:
        name = REFUSING[-1].name
        wrong = {**EXAMPLE, name: wrong_value(REFUSING[-1])}
        response = httpx.post(server.url + "/predict", json=wrong)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", name]


def test_mounted_model_overrides_the_baked_one(
    docker: Any, image: str, mounted_model: Path
) -> None:
    rows = varied_rows()
    with serving(docker, image) as server:
        baked = httpx.post(server.url + "/predict", json=rows).json()
    with serving(docker, image, volumes=bind(mounted_model, MODEL_MOUNT, "ro")) as server:
        assert httpx.get(server.url + "/metadata").json()["model"]["model_version"] == "mounted-1"
        mounted = httpx.post(server.url + "/predict", json=rows).json()
    assert mounted["model_version"] == "mounted-1" != baked["model_version"]
    # Same data and seed, a held-out share of 0.3 instead of the default 0.25: the
    # hyperparameter file reached the training, so the model's probabilities differ (on the
    # rows near a class boundary: a confident model gives the clear ones 1.0 either way, and
    # on data it separates well, every row nearly so); a regressor's values, in standard
    # deviations of the target. Training is reproducible to the byte, so the same
    # hyperparameters would give a difference of 0.
    if REGRESSION:
        spread = float(training_data()[1].std())
        pairs = zip(mounted["predictions"], baked["predictions"], strict=True)
        difference = max(abs(new - old) / spread for new, old in pairs)
    else:
        difference = max(
            abs(new[c] - old[c])
            for new, old in zip(mounted["probabilities"], baked["probabilities"], strict=True)
            for c in old
        )
    assert difference > 1e-6, "the mounted model answers like the baked one"


def test_port_env_and_serve_command(docker: Any, image: str) -> None:
    port = free_port()
    container = docker.containers.run(
        image,
        ["serve"],
        detach=True,
        environment={"PORT": "9000"},
        ports={"9000/tcp": ("127.0.0.1", port)},
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ping")
    finally:
        container.remove(force=True)


def test_runs_as_root_too(docker: Any, image: str) -> None:
    with serving(docker, image, user="0") as server:
        assert httpx.post(server.url + "/invocations", json=[EXAMPLE]).status_code == 200


def test_empty_model_folder_is_live_but_not_ready(docker: Any, image: str, tmp_path: Path) -> None:
    with serving(
        docker, image, ready=False, volumes=bind(shared_dir(tmp_path / "m"), MODEL_MOUNT)
    ) as server:
        deadline = time.time() + 30
        while (ready := httpx.get(server.url + "/readyz")).json()["status"] == "loading":
            assert time.time() < deadline
            time.sleep(0.05)
        assert ready.status_code == 503
        assert "no model in /opt/ml/model" in ready.json()["reason"]
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(f"{server.url}/v2/models/{PROJECT_NAME}/ready").status_code == 503
        for path, body, key in (
            ("/predict", EXAMPLE, "detail"),
            ("/invocations", [EXAMPLE], "detail"),
            (f"/v2/models/{PROJECT_NAME}/infer", v2_body([list(EXAMPLE.values())]), "error"),
        ):
            refused = httpx.post(server.url + path, json=body)
            assert refused.status_code == 503, path
            assert "model not ready" in refused.json()[key], path
        assert httpx.get(server.url + "/livez").status_code == 200
        assert "no model in" in httpx.get(server.url + "/metadata").json()["reason"]
        time.sleep(0.5)
        server.container.reload()
        assert server.container.attrs["State"]["Running"], "a bad model must not crash the server"
        assert '"model not loaded"' in server.logs()


def test_ready_fast_and_docker_stop_is_fast_and_clean(docker: Any, image: str) -> None:
    with serving(docker, image) as server:
        ready_after = time.perf_counter() - server.started
        assert ready_after < 15, "sanity bound only; the benchmark measures start-up time"
        started = time.perf_counter()
        server.container.stop(timeout=10)
        stopped_after = time.perf_counter() - started
        server.container.reload()
        assert server.container.attrs["State"]["ExitCode"] == 0
        assert stopped_after < 2, f"docker stop took {stopped_after:.2f} s"


def test_stop_exits_0_under_an_init_process_too(docker: Any, image: str) -> None:
    with serving(docker, image, init=True) as server:
        server.container.stop(timeout=10)
        assert server.container.wait(timeout=30)["StatusCode"] == 0


def test_graceful_shutdown_finishes_in_flight_requests(docker: Any, image: str) -> None:
    body = json.dumps([EXAMPLE] * 100).encode()
    half_sent, signalled = threading.Event(), threading.Event()
    results: list[int] = []

    def slow_body() -> Any:
        yield body[: len(body) // 2]
        half_sent.set()
        signalled.wait(10)
        yield body[len(body) // 2 :]

    with serving(docker, image) as server:

        def call() -> None:
            results.append(
                httpx.post(server.url + "/predict", content=slow_body(), timeout=30).status_code
            )

        caller = threading.Thread(target=call)
        caller.start()
        assert half_sent.wait(10)
        time.sleep(0.2)
        server.container.kill(signal="SIGTERM")
        time.sleep(0.3)  # the server is shutting down while the request is still arriving
        with pytest.raises(httpx.TransportError):  # no new requests during the drain
            httpx.get(server.url + "/livez", timeout=2)
        signalled.set()
        caller.join(30)
        assert server.container.wait(timeout=30)["StatusCode"] == 0
        assert "Waiting for connections to close" in server.logs()
    assert results == [200]


def test_a_request_that_never_ends_cannot_make_docker_stop_kill(docker: Any, image: str) -> None:
    """GRACEFUL_TIMEOUT's default fits inside `docker stop`'s: the server gives up on a stuck
    request and exits 0 before Docker would SIGKILL it (exit 137)."""
    assert DEFAULT_GRACEFUL_TIMEOUT < DOCKER_STOP_TIMEOUT - 1
    stuck = threading.Event()

    def never_ending_body() -> Any:
        yield b"[" + json.dumps(EXAMPLE).encode()
        stuck.wait(60)

    with serving(docker, image) as server:

        def call() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server gives up on it
                httpx.post(server.url + "/predict", content=never_ending_body(), timeout=60)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        time.sleep(0.5)
        started = time.perf_counter()
        server.container.stop(timeout=DOCKER_STOP_TIMEOUT)
        took = time.perf_counter() - started
        stuck.set()
        assert server.container.wait(timeout=30)["StatusCode"] == 0
        assert DEFAULT_GRACEFUL_TIMEOUT - 0.5 < took < DOCKER_STOP_TIMEOUT, took


# --- train -----------------------------------------------------------------------------


@pytest.mark.full_image
def test_train_writes_the_artifact_into_the_volume(mounted_model: Path) -> None:
    metadata = json.loads((mounted_model / "metadata.json").read_text())
    assert metadata["model_version"] == "mounted-1"
    assert (mounted_model / MODEL_FILE).is_file()
    for plot in REPORT_PLOTS:
        assert (mounted_model / "report" / plot).is_file(), plot


@pytest.mark.full_image
def test_train_on_a_mounted_channel_and_fail_cleanly(
    docker: Any, image: str, tmp_path: Path
) -> None:
    model_dir, data, output = (shared_dir(tmp_path / p) for p in ("model", "data", "output"))
    features, target = training_table()
    features.assign(**{TARGET: target}).to_csv(data / "train.csv", index=False)
    volumes = {
        **bind(model_dir, MODEL_MOUNT),
        **bind(data, "/opt/ml/input/data/train", "ro"),
        **bind(output, "/opt/ml/output"),
    }
    code, logs = run_job(docker, image, ["train"], volumes=volumes)
    assert code == 0, logs
    assert "1 file(s) in /opt/ml/input/data/train" in logs
    before = (model_dir / "metadata.json").read_bytes()

    features.to_csv(data / "train.csv", index=False)  # the target column is gone
    code, logs = run_job(docker, image, ["train"], volumes=volumes)
    assert code == 1
    assert TARGET in logs and "previous model" in logs
    assert TARGET in (output / "failure").read_text()
    assert (model_dir / "metadata.json").read_bytes() == before


@pytest.mark.full_image
def test_docker_stop_during_training_exits_143_and_keeps_the_previous_model(
    docker: Any, image: str, tmp_path: Path
) -> None:
    model_dir, data, output = (shared_dir(tmp_path / p) for p in ("model", "data", "output"))
    code, logs = run_job(docker, image, ["train"], volumes=bind(model_dir, MODEL_MOUNT))
    assert code == 0, logs
    before = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    features, target = training_table()
    repeated(features.assign(**{TARGET: target}), 300_000).to_csv(data / "part-0.csv", index=False)
    for part in range(1, 10):  # 3 million rows in all: reading them takes seconds
        (data / f"part-{part}.csv").hardlink_to(data / "part-0.csv")
    container = docker.containers.run(
        image,
        ["train"],
        detach=True,
        volumes={
            **bind(model_dir, MODEL_MOUNT),
            **bind(data, "/opt/ml/input/data/train", "ro"),
            **bind(output, "/opt/ml/output"),
        },
    )
    try:
        wait_for_log(container, "reading the training data")
        container.stop(timeout=10)
        assert container.wait()["StatusCode"] == 128 + signal.SIGTERM, container.logs().decode()
        assert "stopped by SIGTERM" in container.logs().decode()
    finally:
        container.remove(force=True)
    assert "interrupted" in (output / "failure").read_text()
    after = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    assert after == before
    assert not list(model_dir.glob(".incoming-*"))


# --- predict ---------------------------------------------------------------------------


def test_batch_predict_without_a_model_exits_1(docker: Any, image: str, tmp_path: Path) -> None:
    data = shared_dir(tmp_path / "data")
    training_table()[0].to_csv(data / "in.csv", index=False)
    code, logs = run_job(
        docker,
        image,
        ["predict", "--input", "/data/in.csv", "--output", "/data/out.csv"],
        volumes={**bind(data, "/data"), **bind(shared_dir(tmp_path / "empty"), MODEL_MOUNT)},
    )
    assert code == 1, logs
    assert "predict: failed: no model in /opt/ml/model" in logs
    assert "Traceback" not in logs
    assert not (data / "out.csv").exists()


def peak_memory_mb(logs: str) -> float:
    found = re.search(r"peak_memory_mb (\d+)", logs)
    assert found, logs
    return float(found.group(1))


def test_batch_scoring_memory_does_not_grow_with_the_file(
    docker: Any, image: str, tmp_path: Path
) -> None:
    """Chunked scoring: 20 times the rows, about the same peak memory. Both files take
    several chunks, so both runs have a chunk in the writer thread while the next scores.
    A chunk holds about 20,000 values, whatever the number of features."""
    data = shared_dir(tmp_path / "data")
    chunk_rows = max(20_000 // len(FEATURE_NAMES), 1)
    small = repeated(training_table()[0], 3 * chunk_rows)
    small.to_csv(data / "small.csv", index=False)
    pd.concat([small] * 20, ignore_index=True).to_csv(data / "big.csv", index=False)
    peaks = {}
    for name in ("small", "big"):
        code, logs = run_job(
            docker,
            image,
            [
                "predict",
                "--input",
                f"/data/{name}.csv",
                "--output",
                f"/data/{name}-out.csv",
                "--chunk-rows",
                str(chunk_rows),
            ],
            volumes=bind(data, "/data"),
        )
        assert code == 0, logs
        peaks[name] = peak_memory_mb(logs)
    assert len(pd.read_csv(data / "big-out.csv")) == 20 * len(small)
    # Reading the whole big file at once peaks about 60 MB higher.
    assert peaks["big"] - peaks["small"] < 30, peaks


def test_batch_predict_a_file(docker: Any, image: str, tmp_path: Path, served_model: Any) -> None:
    """The baked model scores the file as the model the unit tests train on the same data."""
    data = shared_dir(tmp_path / "data")
    features, _ = training_data()
    as_table(features).to_csv(data / "in.csv", index=False)
    code, logs = run_job(
        docker,
        image,
        ["predict", "--input", "/data/in.csv", "--output", "/data/out.csv"],
        volumes=bind(data, "/data"),
    )
    assert code == 0, logs
    scored = pd.read_csv(data / "out.csv")
    assert list(scored.columns) == [*FEATURE_NAMES, *SCORE_COLUMNS]
    expected = predicted_rows(served_model, features.to_numpy())
    if REGRESSION:
        assert same_answers(scored["prediction"].tolist(), expected)
    else:
        assert scored["prediction"].astype(str).tolist() == expected


def test_batch_predict_rejects_a_bad_csv(docker: Any, image: str, tmp_path: Path) -> None:
    data = shared_dir(tmp_path / "data")
    name = REFUSING[-1].name
    wrong = {**EXAMPLE, name: wrong_value(REFUSING[-1])}
    lines = [",".join(FEATURE_NAMES), csv_line(EXAMPLE), csv_line(wrong)]
    (data / "in.csv").write_text("".join(line + "\n" for line in lines))
    code, logs = run_job(
        docker,
        image,
        ["predict", "--input", "/data/in.csv", "--output", "/data/out.csv"],
        volumes=bind(data, "/data"),
    )
    assert code == 1
    assert f"column {name!r}, row 2" in logs
    assert "Traceback" not in logs
    assert not (data / "out.csv").exists()


def test_docker_stop_ends_a_long_batch_job(docker: Any, image: str, tmp_path: Path) -> None:
    data = shared_dir(tmp_path / "data")
    repeated(training_table()[0], 600_000).to_csv(data / "in.csv", index=False)
    container = docker.containers.run(
        image,
        # Small chunks and frequent progress lines: the job is surely still running when
        # its first progress line appears.
        ["predict", "--input", "/data/in.csv", "--output", "/data/out.csv", "--chunk-rows", "100"],
        detach=True,
        volumes=bind(data, "/data"),
        environment={"PROGRESS_INTERVAL": "0.05"},
    )
    try:
        wait_for_log(container, "predict: progress:")
        started = time.perf_counter()
        container.stop(timeout=10)
        assert time.perf_counter() - started < 2
        assert container.wait()["StatusCode"] == 128 + signal.SIGTERM
        assert not (data / "out.csv").exists()
    finally:
        container.remove(force=True)
