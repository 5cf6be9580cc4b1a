"""Batch scoring at scale against real containers: pass-through columns, shards by flag and by
environment, a Dask cluster of the image's own containers, and SageMaker Batch Transform."""

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from .conftest import ID, NOTE, REGRESSION
from .docker_support import bind, free_port, run_job, serving, shared_dir, wait_for_log
from .test_batch_datasets import keyed_rows, read_parts

pytestmark = pytest.mark.container


def dataset(folder: Path, parts: int, rows_per_part: int) -> pd.DataFrame:
    """`parts` CSV files with an id column; returns all their rows in order."""
    rows = keyed_rows(parts * rows_per_part)
    for i in range(parts):
        rows[i * rows_per_part : (i + 1) * rows_per_part].to_csv(
            folder / f"part-{i}.csv", index=False
        )
    return rows


def predict_job(docker: Any, image: str, data: Path, *args: str, **run: Any) -> str:
    code, logs = run_job(docker, image, ["predict", *args], volumes=bind(data, "/data"), **run)
    assert code == 0, logs
    return logs


def test_shards_by_flag_and_by_environment_add_up_to_a_single_run(
    docker: Any, image: str, tmp_path: Path
) -> None:
    data = shared_dir(tmp_path / "data")
    shared_dir(data / "in")
    rows = keyed_rows(30_000)
    rows.to_csv(data / "in" / "big.csv", index=False)
    predict_job(docker, image, data, "--input", "/data/in", "--output", "/data/single")
    for index in range(3):  # shards by flag
        predict_job(
            docker,
            image,
            data,
            "--input",
            "/data/in",
            "--output",
            "/data/by-flag",
            "--shard-index",
            str(index),
            "--shard-count",
            "3",
        )
    for index in range(3):  # shards as a Kubernetes Indexed Job runs them
        predict_job(
            docker,
            image,
            data,
            "--input",
            "/data/in",
            "--output",
            "/data/by-env",
            environment={"JOB_COMPLETION_INDEX": str(index), "SHARD_COUNT": "3"},
        )
    single = read_parts(data / "single")
    assert list(single[ID]) == list(rows[ID]), "ids pass through, in order"
    pd.testing.assert_frame_equal(single[rows.columns], rows, check_dtype=False)
    for name in ("by-flag", "by-env"):
        assert len(list((data / name).glob("part-*"))) == 3, "one file spreads across shards"
        pd.testing.assert_frame_equal(read_parts(data / name), single)
        success = json.loads((data / name / "_SUCCESS").read_text())
        assert success["rows"] == 30_000 and success["shards"] == 3


def test_bad_shard_settings_exit_1_naming_the_problem(
    docker: Any, image: str, tmp_path: Path
) -> None:
    data = shared_dir(tmp_path / "data")
    dataset(data, parts=1, rows_per_part=10)
    code, logs = run_job(
        docker,
        image,
        ["predict", "--input", "/data", "--output", "/data/out"],
        volumes=bind(data, "/data"),
        environment={"JOB_COMPLETION_INDEX": "3", "SHARD_COUNT": "3"},
    )
    assert code == 1
    assert "shard index 3 is out of range for 3 shards" in logs and "Traceback" not in logs
    assert not (data / "out").exists()


@contextlib.contextmanager
def dask_cluster(docker: Any, image: str, volumes: dict[str, Any], workers: int) -> Iterator[str]:
    """A scheduler and `workers` workers started from the image on the host's network."""
    port = free_port()
    containers = []
    try:
        scheduler = docker.containers.run(
            image,
            ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
            entrypoint="dask",
            network_mode="host",
            detach=True,
        )
        containers.append(scheduler)
        wait_for_log(scheduler, "Scheduler at:")
        address = f"tcp://127.0.0.1:{port}"
        worker_args = ["worker", address, "--nthreads", "1", "--host", "127.0.0.1"]
        for _ in range(workers):
            worker = docker.containers.run(
                image,
                [*worker_args, "--dashboard-address", ":0"],
                entrypoint="dask",
                network_mode="host",
                volumes=volumes,
                detach=True,
            )
            containers.append(worker)
        for worker in containers[1:]:
            wait_for_log(worker, "Registered to:")
        yield address
    except BaseException:
        for container in containers:
            print(container.logs().decode(errors="replace")[-3000:])
        raise
    finally:
        for container in containers:
            container.remove(force=True)


@pytest.mark.full_image
def test_dask_cluster_of_the_image_scores_like_a_local_run(
    docker: Any, image: str, tmp_path: Path
) -> None:
    data = shared_dir(tmp_path / "data")
    shared_dir(data / "in")
    dataset(data / "in", parts=5, rows_per_part=2_000)
    predict_job(docker, image, data, "--input", "/data/in", "--output", "/data/local")
    with dask_cluster(docker, image, bind(data, "/data"), workers=2) as address:
        logs = predict_job(
            docker,
            image,
            data,
            "--engine",
            "dask",
            "--scheduler",
            address,
            "--input",
            "/data/in",
            "--output",
            "/data/on-dask",
            network_mode="host",
        )
    assert "workers 2" in logs
    pd.testing.assert_frame_equal(read_parts(data / "on-dask"), read_parts(data / "local"))
    local = json.loads((data / "local" / "_SUCCESS").read_text())
    on_dask = json.loads((data / "on-dask" / "_SUCCESS").read_text())
    assert on_dask["parts"] == local["parts"], "the same parts, byte for byte"


@pytest.mark.full_image
def test_an_unreachable_scheduler_is_reported_within_the_timeout(
    docker: Any, image: str, tmp_path: Path
) -> None:
    data = shared_dir(tmp_path / "data")
    dataset(data, parts=1, rows_per_part=10)
    started = time.monotonic()
    code, logs = run_job(
        docker,
        image,
        ["predict", "--engine", "dask", "--input", "/data", "--output", "/data/out"],
        volumes=bind(data, "/data"),
        network_mode="host",
        environment={"DASK_SCHEDULER_ADDRESS": f"tcp://127.0.0.1:{free_port()}"},
    )
    assert code == 1, logs
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in logs
    assert "Traceback" not in logs
    assert time.monotonic() - started < 30
    assert not (data / "out").exists()


def test_sagemaker_batch_transform(docker: Any, image: str) -> None:
    records = keyed_rows(1_000).drop(columns=[ID, NOTE])
    csv_body = records.to_csv(index=False, header=False)
    # The same values in every body, a missing one as null: JSON has no NaN.
    as_json = records.astype(object).where(records.notna(), None).to_dict("records")
    jsonl_body = "".join(json.dumps(record) + "\n" for record in as_json)
    with serving(docker, image) as server:
        params = httpx.get(server.url + "/execution-parameters").json()
        assert params["BatchStrategy"] == "MULTI_RECORD"
        assert params["MaxPayloadInMB"] >= 1 and params["MaxConcurrentTransforms"] >= 1
        expected = httpx.post(server.url + "/predict", json=as_json).json()
        as_csv = httpx.post(
            server.url + "/invocations", content=csv_body, headers={"Content-Type": "text/csv"}
        )
        lines = as_csv.text.splitlines()
        assert len(lines) == 1_000 and not lines[0].startswith("prediction")
        cells = [line.split(",")[0] for line in lines]
        assert ([float(c) for c in cells] if REGRESSION else cells) == expected["predictions"]
        as_jsonl = httpx.post(
            server.url + "/invocations",
            content=jsonl_body,
            headers={"Content-Type": "application/jsonlines"},
        )
        answers = [json.loads(line) for line in as_jsonl.text.splitlines()]
        assert [a["prediction"] for a in answers] == expected["predictions"]
        over = params["MaxPayloadInMB"] * 1024 * 1024 + 1
        too_big = (csv_body * (over // len(csv_body) + 1))[:over]
        refused = httpx.post(
            server.url + "/invocations", content=too_big, headers={"Content-Type": "text/csv"}
        )
        assert refused.status_code == 413, refused.text
