"""Batch scoring's safety in the image: shards and readers under other UIDs of group 0 share one
output (OpenShift, or Kubernetes with a runAsUser per job), and the malformed inputs and
hostile settings of a careful engineer's probe each end in one clear line, exit 1 or 2, with
nothing written where it should not be."""

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES

from .conftest import NUMERIC
from .docker_support import bind, run_job
from .test_batch_datasets import keyed_rows, read_parts
from .test_container_batch import predict_job

pytestmark = pytest.mark.container


def group_0_volume(path: Path) -> Path:
    """A folder as OpenShift prepares a volume: group 0 may write it, others nothing."""
    path.mkdir(parents=True)
    path.chmod(0o770)
    return path


def test_shards_and_readers_under_other_uids_of_group_0_share_one_output(
    docker: Any, image: str, tmp_path: Path
) -> None:
    data = group_0_volume(tmp_path / "data")
    rows = keyed_rows(6_000)
    rows.to_csv(data / "in.csv", index=False)
    (data / "in.csv").chmod(0o640)
    shards = {"--input": "/data/in.csv", "--output": "/data/out", "--shard-count": "3"}
    options = [item for pair in shards.items() for item in pair]
    environment = {"BATCH_RUN_ID": "uids-1"}
    # Each shard under a UID of its own; shard 2 twice, the copy replacing the first's files.
    for uid, index in ((20001, "0"), (20002, "1"), (20003, "1"), (20004, "2")):
        shard = ["--shard-index", index]
        predict_job(docker, image, data, *options, *shard, environment=environment, user=f"{uid}:0")
    success = json.loads((data / "out" / "_SUCCESS").read_text())
    assert success["rows"] == 6_000 and success["shards"] == 3
    # A reader under yet another UID of group 0 reads every part and the marker.
    reader = (
        "import glob, json; "
        "rows = sum(len(open(p).readlines()) - 1 for p in sorted(glob.glob('/data/out/part-*'))); "
        "print(json.dumps({'rows': rows, 'marker': json.load(open('/data/out/_SUCCESS'))['rows']}))"
    )
    code, logs = run_job(
        docker,
        image,
        ["-c", reader],
        entrypoint=["python"],
        volumes=bind(data, "/data", "ro"),
        user="20005:0",
    )
    assert code == 0, logs
    assert json.loads(logs.strip().splitlines()[-1]) == {"rows": 6_000, "marker": 6_000}
    assert list(read_parts(data / "out")[rows.columns[0]]) == list(rows[rows.columns[0]])


def failure(docker: Any, image: str, data: Path, *args: str, **run: Any) -> tuple[int, str]:
    """The exit code and the last line of a `predict` that must fail without a traceback."""
    code, logs = run_job(docker, image, ["predict", *args], volumes=bind(data, "/data"), **run)
    assert "Traceback" not in logs, logs
    return code, logs.strip().splitlines()[-1]


def test_the_probe_s_inputs_and_settings_end_in_one_clear_line(
    docker: Any, image: str, tmp_path: Path
) -> None:
    data = group_0_volume(tmp_path / "data")
    rows = keyed_rows(300)
    rows.to_csv(data / "same.csv", index=False)
    kept = (data / "same.csv").read_bytes()

    code, line = failure(
        docker, image, data, "--input", "/data/same.csv", "--output", "/data/same.csv"
    )
    assert code == 1 and line.startswith(
        "predict: failed: --output /data/same.csv is the input file"
    )
    assert (data / "same.csv").read_bytes() == kept

    code, line = failure(
        docker,
        image,
        data,
        "--input",
        "/data/same.csv",
        "--output",
        "/data/out",
        environment={"BATCH_RUN_ID": "../../../tmp/x"},
    )
    assert code == 2 and line.startswith("configuration error: BATCH_RUN_ID:")

    by_count = {"BATCH_RUN_ID": "mixed-1"}
    common = ["--input", "/data/same.csv", "--output", "/data/mixed"]
    for index in ("0", "1", "3"):
        predict_job(
            docker,
            image,
            data,
            *common,
            "--shard-index",
            index,
            "--shard-count",
            "4",
            environment=by_count,
            user="20001:0",
        )
    code, line = failure(
        docker,
        image,
        data,
        *common,
        "--shard-index",
        "2",
        "--shard-count",
        "3",
        environment=by_count,
    )
    assert code == 1 and "differs from the run's plan: it has 3 shards, not 4" in line, line
    assert not (data / "mixed" / "_SUCCESS").exists()

    pd.concat([rows, rows[[FEATURE_NAMES[0]]]], axis=1).to_csv(data / "twice.csv", index=False)
    (data / "wide.csv").write_text("a" * 10_000_000 + "\n1\n")
    lines = rows.to_json(orient="records", lines=True).splitlines()
    (data / "two.jsonl").write_text(
        "\n".join([lines[0], lines[1] + " " + lines[2], *lines[3:]]) + "\n"
    )
    table = pa.Table.from_pandas(rows[:2], preserve_index=False)
    column = table.schema.get_field_index(NUMERIC.name)
    table = table.set_column(column, NUMERIC.name, pa.array([1, 2], pa.timestamp("us")))
    pq.write_table(table, data / "time.parquet")
    expected = {
        "twice.csv": f"column '{FEATURE_NAMES[0]}' appears 2 times in its header",
        "wide.csv": "cannot read it as csv: field larger than field limit",
        "two.jsonl": "line 2 is not one JSON object",
        "time.parquet": f"column '{NUMERIC.name}', row 1 holds timestamp[us] values",
    }
    for name, problem in expected.items():
        out = f"/data/out-{name}"
        code, line = failure(docker, image, data, "--input", f"/data/{name}", "--output", out)
        assert code == 1 and line.startswith(f"predict: failed: /data/{name}: "), line
        assert problem in line, line
        assert not (data / f"out-{name}").exists()
    assert not [p.name for p in data.glob(".*")]
