"""Batch scoring on object storage against a real S3-compatible server (moto's standalone
server, the `s3_endpoint` fixture): `predict --input s3://... --output s3://...` gives the rows
a run on local folders gives, with the same folder protocol (parts, shards, `_SUCCESS` last, a
retry that duplicates nothing), errors that name the object, column and row, and an output
inside its input refused before anything is written. The slim image does the same."""

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import pytest

from .conftest import (
    Build,
    on_worker,
    project_command,
    project_data,
    project_module,
)
from .s3_server import CREDENTIALS, store

BUCKET = "batch"
PARTS = 3


@dataclass(frozen=True)
class Scoring:
    project: Path
    endpoint: str
    env: dict[str, str]
    table: pd.DataFrame  # the input rows, with an `id` column, in order
    # by format (csv, parquet): what `predict` writes for them from a local folder
    expected: dict[str, pd.DataFrame]


FORMATS = {"csv": ".csv", "parquet": ".parquet"}


def s3_env(endpoint: str) -> dict[str, str]:
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"}


def put(endpoint: str, key: str, data: bytes) -> None:
    with store(endpoint).open_output_stream(f"{BUCKET}/{key}") as out:
        out.write(data)


def keys_under(endpoint: str, prefix: str) -> list[str]:
    selector = pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True)
    found = store(endpoint).get_file_info(selector)
    return sorted(
        info.path.removeprefix(f"{BUCKET}/{prefix}/")
        for info in found
        if info.type == pafs.FileType.File
    )


def read_object(endpoint: str, key: str) -> bytes:
    with store(endpoint).open_input_stream(f"{BUCKET}/{key}") as stream:
        return bytes(stream.read())


def read_table(data: bytes, kind: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data)) if kind == "csv" else pd.read_parquet(io.BytesIO(data))


def scored_parts(endpoint: str, prefix: str, kind: str = "csv") -> pd.DataFrame:
    """The output folder's parts, read in name order and joined, as a reader of it would."""
    parts = [key for key in keys_under(endpoint, prefix) if key.startswith("part-")]
    assert parts, keys_under(endpoint, prefix)
    frames = [read_table(read_object(endpoint, f"{prefix}/{key}"), kind) for key in parts]
    return pd.concat(frames, ignore_index=True)


def local_parts(folder: Path, kind: str) -> pd.DataFrame:
    frames = [read_table(path.read_bytes(), kind) for path in sorted(folder.glob("part-*"))]
    return pd.concat(frames, ignore_index=True)


def predict(scoring: Scoring, *options: str, **env: str) -> Any:
    return project_command(scoring.project, "predict", *options, env={**scoring.env, **env})


@pytest.fixture(scope="module")
def scoring(
    default_project: Path, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Scoring:
    """A trained model; the project's rows with an `id`, in PARTS files of each format on disk
    and under s3://batch/<format>/ (with hidden objects beside them that are not data); and
    the local run's output for each."""
    folder = tmp_path_factory.mktemp("batch-on-s3")
    env = {**s3_env(s3_endpoint), "MODEL_DIR": str(folder / "model")}
    trained = project_command(
        default_project,
        "train",
        env={**env, "TRAINING_DATA_DIR": str(default_project / "data" / "train")},
    )
    assert trained.returncode == 0, trained.stderr
    data = project_data(default_project)
    table = data.rows.assign(id=[f"row-{i}" for i in range(len(data.rows))])
    store(s3_endpoint).create_dir(BUCKET)
    size = -(-len(table) // PARTS)
    expected = {}
    for kind, suffix in FORMATS.items():
        (folder / kind).mkdir()
        for k in range(PARTS):
            part = folder / kind / f"part-{k}{suffix}"
            rows = table.iloc[k * size : (k + 1) * size]
            rows.to_csv(part, index=False) if kind == "csv" else rows.to_parquet(part, index=False)
            put(s3_endpoint, f"{kind}/{part.name}", part.read_bytes())
        for hidden in ("_SUCCESS", f".part-9{suffix}.crc", f"_temporary/part-9{suffix}"):
            put(s3_endpoint, f"{kind}/{hidden}", b"not data")
        scoring = Scoring(default_project, s3_endpoint, env, table, {})
        output = folder / f"{kind}-out"
        local = predict(scoring, "--input", str(folder / kind), "--output", str(output))
        assert local.returncode == 0, local.stderr
        expected[kind] = local_parts(output, kind)
    return Scoring(default_project, s3_endpoint, env, table, expected)


def one_of_two(scoring: Scoring, index: int, source: str, target: str, run: str) -> Any:
    """Shard `index` of 2 of the run `run`."""
    shard = ["--shard-index", str(index), "--shard-count", "2"]
    return predict(scoring, "--input", source, "--output", target, *shard, BATCH_RUN_ID=run)


def success(scoring: Scoring, prefix: str) -> dict[str, Any]:
    return dict(json.loads(read_object(scoring.endpoint, f"{prefix}/_SUCCESS")))


@pytest.mark.parametrize("kind", list(FORMATS))
def test_a_dataset_in_s3_is_scored_into_s3_as_on_disk(scoring: Scoring, kind: str) -> None:
    out = f"out-{kind}"
    source, target = f"s3://{BUCKET}/{kind}/", f"s3://{BUCKET}/{out}"
    run = predict(scoring, "--input", source, "--output", target, "--split-mb", "0.001")
    assert run.returncode == 0, run.stderr
    found = scored_parts(scoring.endpoint, out, kind)
    pd.testing.assert_frame_equal(found, scoring.expected[kind])
    assert found["id"].tolist() == scoring.table["id"].tolist()
    marker = success(scoring, out)
    assert marker["rows"] == len(scoring.table) and marker["format"] == kind
    suffix = FORMATS[kind]
    assert marker["inputs"] == [f"{source}part-{k}{suffix}" for k in range(PARTS)]
    parts = [part["name"] for part in marker["parts"]]
    if kind == "csv":
        assert len(parts) > PARTS, "--split-mb splits each file into byte ranges"
    written = keys_under(scoring.endpoint, out)
    assert [key for key in written if key.startswith("part-")] == parts
    assert not [key for key in written if key.endswith(".partial")], written

    again = predict(scoring, "--input", f"s3://{BUCKET}/{kind}/part-*", "--output", target)
    assert again.returncode == 1 and "already holds a complete result" in again.stderr


def test_shards_into_s3_mark_the_run_complete_once_and_a_retry_duplicates_nothing(
    scoring: Scoring,
) -> None:
    def shard(index: int) -> Any:
        source = f"s3://{BUCKET}/parquet/part-*.parquet"
        return one_of_two(scoring, index, source, f"s3://{BUCKET}/sharded/", "nightly")

    first = shard(1)
    assert first.returncode == 0, first.stderr
    assert "_SUCCESS" not in keys_under(scoring.endpoint, "sharded")  # shard 0 is not done
    retried = shard(1)  # a second copy of the same shard, as a restarted pod is
    assert retried.returncode == 0, retried.stderr
    last = shard(0)
    assert last.returncode == 0, last.stderr
    marker = success(scoring, "sharded")
    assert marker["shards"] == 2 and marker["rows"] == len(scoring.table)
    found = scored_parts(scoring.endpoint, "sharded", "parquet")
    pd.testing.assert_frame_equal(found, scoring.expected["parquet"])
    after = shard(1)  # the run is complete: nothing to do, nothing rewritten
    assert after.returncode == 0 and "the run is complete" in after.stderr + after.stdout
    assert success(scoring, "sharded") == marker


def test_a_part_replaced_after_its_shard_wrote_it_is_never_vouched_for(
    scoring: Scoring,
) -> None:
    """Another writer replaces a part with other bytes of the same size (another run under the
    same BATCH_RUN_ID, say): the shard that completes the run sees the part's listed time
    differ from its shard's record, and writes no `_SUCCESS`."""

    def shard(index: int) -> Any:
        return one_of_two(scoring, index, f"s3://{BUCKET}/csv/", f"s3://{BUCKET}/replaced/", "r")

    first = shard(1)
    assert first.returncode == 0, first.stderr
    [part] = [key for key in keys_under(scoring.endpoint, "replaced") if key.startswith("part-")]
    original = read_object(scoring.endpoint, f"replaced/{part}")
    time.sleep(1.1)  # S3 lists times to the second
    put(scoring.endpoint, f"replaced/{part}", original.replace(b"row-", b"ROW-"))
    last = shard(0)
    assert last.returncode == 1
    [line] = last.stderr.strip().splitlines()
    assert f"{part} is not the part its shard wrote" in line, line
    assert "_SUCCESS" not in keys_under(scoring.endpoint, "replaced")


def test_a_bad_row_in_s3_is_named_and_nothing_is_marked_complete(scoring: Scoring) -> None:
    schema = project_module(scoring.project, "core.schema")
    number = next(f.name for f in schema.FEATURES if f.type in ("number", "integer"))
    bad = scoring.table.copy().astype({number: object})
    bad.loc[7, number] = "seven"
    put(scoring.endpoint, "bad/part-0.csv", scoring.table.to_csv(index=False).encode())
    put(scoring.endpoint, "bad/part-1.csv", bad.to_csv(index=False).encode())
    run = predict(scoring, "--input", f"s3://{BUCKET}/bad/", "--output", f"s3://{BUCKET}/bad-out/")
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert f"s3://{BUCKET}/bad/part-1.csv: column '{number}', row 8 " in line, line
    assert "_SUCCESS" not in keys_under(scoring.endpoint, "bad-out")


@pytest.mark.parametrize(
    ("source", "target", "problem"),
    [
        ("csv/", "csv/scored/", "lies inside the input folder"),
        ("csv/part-*.csv", "csv/", "holds the input file"),
        ("csv/part-0.csv", "csv/part-0.csv", "is the input file"),
        ("nothing-here/", "elsewhere/", "no such object, and no objects under it"),
    ],
)
def test_an_output_that_would_replace_its_input_is_refused_before_anything_is_written(
    scoring: Scoring, source: str, target: str, problem: str
) -> None:
    before = keys_under(scoring.endpoint, "")
    run = predict(
        scoring, "--input", f"s3://{BUCKET}/{source}", "--output", f"s3://{BUCKET}/{target}"
    )
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert problem in line, line
    assert keys_under(scoring.endpoint, "") == before


def test_one_object_is_scored_into_one_object(scoring: Scoring) -> None:
    run = predict(
        scoring,
        "--input",
        f"s3://{BUCKET}/csv/part-0.csv",
        "--output",
        f"s3://{BUCKET}/one/scored.csv",
    )
    assert run.returncode == 0, run.stderr
    assert keys_under(scoring.endpoint, "one") == ["scored.csv"]
    found = pd.read_csv(io.BytesIO(read_object(scoring.endpoint, "one/scored.csv")))
    expected = scoring.expected["csv"].iloc[: len(found)].reset_index(drop=True)
    pd.testing.assert_frame_equal(found, expected)


@on_worker("3.11")
def test_the_slim_image_scores_from_s3_into_s3(docker: Any, build: Build, scoring: Scoring) -> None:
    """The serving image's `predict` (its baked model), the S3 server on the host's network."""
    _project, slim = build("3.11", target="serve")
    command = ["predict", "--input", f"s3://{BUCKET}/parquet/", "--output", f"s3://{BUCKET}/image/"]
    job = docker.containers.run(
        slim, command, environment=s3_env(scoring.endpoint), network_mode="host", detach=True
    )
    try:
        exit_code = job.wait(timeout=300)["StatusCode"]
        assert exit_code == 0, job.logs().decode(errors="replace")
    finally:
        job.remove(force=True)
    found = scored_parts(scoring.endpoint, "image", "parquet")
    assert found["id"].tolist() == scoring.table["id"].tolist()
    assert list(found.columns) == list(scoring.expected["parquet"].columns)
    assert success(scoring, "image")["rows"] == len(scoring.table)
