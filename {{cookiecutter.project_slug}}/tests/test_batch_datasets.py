"""Batch scoring of datasets: pass-through columns, folders and globs, shards and markers."""

import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from {{ cookiecutter.package_name }}.batch.dataset import (
    Shard,
    find_dataset,
    plan,
    resolve_shard,
)
from {{ cookiecutter.package_name }}.batch.engines.local import predict
from {{ cookiecutter.package_name }}.batch.job import BatchJob
from {{ cookiecutter.package_name }}.batch.output import SUCCESS_FILE
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, InputError
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings

from .conftest import (
    ID,
    NOTE,
    NUMERIC,
    REFUSING,
    SCORE_COLUMNS,
    UNKNOWN,
    as_records,
    training_data,
    training_table,
    unused,
)


def keyed_rows(count: int) -> pd.DataFrame:
    """`count` rows of the training data's features (again from the start when it has fewer),
    with an id (leading zeros: it must pass through as text) and a free-text note around them."""
    features, _ = training_table()
    rows = features.iloc[np.arange(count) % len(features)].reset_index(drop=True)
    rows.insert(0, ID, [f"{i:07d}" for i in range(count)])
    rows[NOTE] = [f'row {i}, "quoted"' for i in range(count)]
    return pd.DataFrame(rows)


def read_parts(folder: Path, kind: str = "csv") -> pd.DataFrame:
    """The output folder's parts in name order, as the one table they make up."""
    parts = sorted(folder.glob(f"part-*.{kind}"))
    assert parts, f"no parts in {folder}"
    if kind == "parquet":
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return pd.concat([pd.read_csv(p, dtype={ID: str}) for p in parts], ignore_index=True)


def test_extra_columns_pass_through_in_order(tmp_path: Path, trained: Settings) -> None:
    rows = keyed_rows(300)
    rows.to_csv(tmp_path / "in.csv", index=False)
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=50))
    scored = pd.read_csv(tmp_path / "out.csv", dtype={ID: str})
    assert list(scored.columns[: len(rows.columns)]) == list(rows.columns)
    pd.testing.assert_frame_equal(scored[rows.columns], rows, check_dtype=False)
    assert "prediction" in scored.columns


def test_keep_columns_selects_the_extra_columns(tmp_path: Path, trained: Settings) -> None:
    keyed_rows(20).to_csv(tmp_path / "in.csv", index=False)
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "a.csv", keep_columns=(ID,)))
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "b.csv", keep_columns=()))
    width = len(FEATURE_NAMES)
    assert list(pd.read_csv(tmp_path / "a.csv").columns[: width + 1]) == [ID, *FEATURE_NAMES]
    assert list(pd.read_csv(tmp_path / "b.csv").columns[:width]) == list(FEATURE_NAMES)
    with pytest.raises(InputError, match=f"no such extra column: {re.escape(UNKNOWN)}"):
        predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "c.csv", keep_columns=(UNKNOWN,)))


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_shards_of_one_file_add_up_to_a_single_run(
    kind: str, tmp_path: Path, trained: Settings
) -> None:
    rows = keyed_rows(2_000)
    source = tmp_path / f"in.{kind}"
    if kind == "parquet":
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=150)
    elif kind == "csv":
        rows.to_csv(source, index=False)
    else:
        rows.to_json(source, orient="records", lines=True)
    single = tmp_path / "single"
    predict(trained, BatchJob(source, single, chunk_rows=64))
    sharded = tmp_path / "sharded"
    for index in (2, 0, 1):  # any order
        assert not (sharded / SUCCESS_FILE).exists(), "complete before every shard ran"
        predict(trained, BatchJob(source, sharded, shard=Shard(index, 3), chunk_rows=64))
    assert len(list(sharded.glob("part-*"))) >= 3, "one file must spread across the shards"
    if kind == "jsonl":

        def read(folder: Path) -> pd.DataFrame:
            parts = sorted(folder.glob("part-*"))
            return pd.concat(
                [pd.read_json(p, lines=True, dtype={ID: str}) for p in parts], ignore_index=True
            )

        single_rows, sharded_rows = read(single), read(sharded)
    else:
        single_rows, sharded_rows = read_parts(single, kind), read_parts(sharded, kind)
    pd.testing.assert_frame_equal(sharded_rows, single_rows)
    assert list(sharded_rows[ID]) == list(rows[ID])
    success = json.loads((sharded / SUCCESS_FILE).read_text())
    assert success["rows"] == 2_000 and success["shards"] == 3
    assert [p["name"] for p in success["parts"]] == sorted(p.name for p in sharded.glob("part-*"))


def test_a_folder_and_a_glob_are_datasets(tmp_path: Path, trained: Settings) -> None:
    rows = keyed_rows(90)
    data = tmp_path / "data"
    (data / "day=2").mkdir(parents=True)
    rows[:30].to_csv(data / "a.csv", index=False)
    rows[30:60].to_csv(data / "b.csv", index=False)
    rows[60:].to_csv(data / "day=2" / "c.csv", index=False)
    (data / "_SUCCESS").write_text("{}")  # markers and hidden files are not data
    (data / ".a.csv.crc").write_text("x")
    predict(trained, BatchJob(data, tmp_path / "from-folder"))
    predict(trained, BatchJob(Path(f"{data}/*.csv"), tmp_path / "from-glob"))
    assert list(read_parts(tmp_path / "from-folder")[ID]) == list(rows[ID])
    assert list(read_parts(tmp_path / "from-glob")[ID]) == list(rows[ID][:60])


def test_a_retried_shard_rewrites_only_its_own_parts(tmp_path: Path, trained: Settings) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        keyed_rows(10).to_csv(data / f"{i}.csv", index=False)
    out = tmp_path / "out"
    predict(trained, BatchJob(data, out, shard=Shard(0, 2)))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    assert sorted(before) == ["part-00000.csv", "part-00002.csv"]
    predict(trained, BatchJob(data, out, shard=Shard(1, 2)))
    predict(trained, BatchJob(data, out, shard=Shard(1, 2), overwrite=True))  # a retry
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    assert {name: after[name] for name in before} == before
    assert sorted(after) == [f"part-0000{i}.csv" for i in range(4)]
    assert json.loads((out / SUCCESS_FILE).read_text())["rows"] == 40


def test_a_complete_output_is_kept_unless_overwriting(tmp_path: Path, trained: Settings) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keyed_rows(10).to_csv(data / "a.csv", index=False)
    predict(trained, BatchJob(data, tmp_path / "out"))
    with pytest.raises(InputError, match="already holds a complete result"):
        predict(trained, BatchJob(data, tmp_path / "out"))
    predict(trained, BatchJob(data, tmp_path / "out", overwrite=True))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Shard(0, 1)),
        ({"JOB_COMPLETION_INDEX": "2", "SHARD_COUNT": "3"}, Shard(2, 3)),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "4", "AWS_BATCH_JOB_ARRAY_SIZE": "5"}, Shard(4, 5)),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "1", "SHARD_COUNT": "2"}, Shard(1, 2)),
    ],
)
def test_shard_comes_from_the_environment(
    env: dict[str, str], expected: Shard, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert resolve_shard(None, None, Settings()) == expected
    assert resolve_shard(0, 1, Settings()) == Shard(0, 1), "flags win over the environment"


@pytest.mark.parametrize(
    ("index", "count", "message"),
    [
        (3, 3, "shard index 3 is out of range for 3 shards"),
        (-1, 2, "out of range"),
        (0, 0, "the shard count must be 1 or more"),
        (None, 4, "4 shards but no shard index"),
        (1, None, "shard index 1 is set but not the shard count"),
    ],
)
def test_bad_shards_are_refused(index: int | None, count: int | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve_shard(index, count, Settings())


def test_bad_datasets_name_the_file(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    keyed_rows(5).to_csv(mixed / "a.csv", index=False)
    keyed_rows(5).to_parquet(mixed / "b.parquet", index=False)
    with pytest.raises(InputError, match=r"mixes formats: .*a\.csv \(csv\), .*b\.parquet"):
        find_dataset(mixed)
    differ = tmp_path / "differ"
    differ.mkdir()
    keyed_rows(5).to_csv(differ / "a.csv", index=False)
    keyed_rows(5).drop(columns=NOTE).to_csv(differ / "b.csv", index=False)
    with pytest.raises(InputError, match=r"b\.csv: its columns .* differ from those of .*a\.csv"):
        find_dataset(differ)
    with pytest.raises(InputError, match="no such file or folder"):
        find_dataset(tmp_path / "nothing")


def test_byte_ranges_start_at_line_starts_and_cover_the_file(tmp_path: Path) -> None:
    keyed_rows(1_000).to_csv(tmp_path / "in.csv", index=False)
    data = (tmp_path / "in.csv").read_bytes()
    pieces = plan(find_dataset(tmp_path / "in.csv"), shard_count=7)
    assert len(pieces) == 7
    assert pieces[0].start == data.index(b"\n") + 1 and pieces[-1].end == len(data)
    for before, after in itertools.pairwise(pieces):
        assert before.end == after.start and data[after.start - 1 : after.start] == b"\n"


def test_a_bad_value_deep_in_a_shard_names_its_row_in_the_file(
    tmp_path: Path, trained: Settings
) -> None:
    name = REFUSING[-1].name
    rows = keyed_rows(1_000).astype({name: object})
    rows.loc[876, name] = "n/a"
    rows.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(
        InputError, match=rf"in\.csv: column '{re.escape(name)}', row 877 has 'n/a'"
    ):
        for index in range(4):
            predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out", shard=Shard(index, 4)))
    assert not list((tmp_path / "out").glob("*.partial")) and not list(
        (tmp_path / "out").glob(".*partial*")
    )


def test_cli_shards_from_the_environment_and_reports_progress(
    tmp_path: Path,
    trained: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keyed_rows(500).to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.setenv("MODEL_DIR", str(trained.model_dir))
    monkeypatch.setenv("SHARD_COUNT", "2")
    monkeypatch.setenv("LOG_FORMAT", "json")
    for index in ("1", "0"):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", index)
        get_settings.cache_clear()
        try:
            code = main(
                ["predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out")]
            )
        finally:
            get_settings.cache_clear()
        assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["start", "done", "start", "done"]
    assert lines[0]["shard"] == "2 of 2"
    assert sum(line["rows"] for line in lines if line["event"] == "done") == 500
    assert len(read_parts(tmp_path / "out")) == 500


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_progress_lines_come_at_the_interval_with_an_eta(
    kind: str, tmp_path: Path, trained: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = keyed_rows(3_000)
    source = tmp_path / f"in.{kind}"
    if kind == "csv":
        rows.to_csv(source, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=500)
    settings = trained.model_copy(update={"progress_interval": 1e-6, "log_format": "json"})
    predict(settings, BatchJob(source, tmp_path / f"out.{kind}", chunk_rows=500))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    progress = [line for line in lines if line["event"] == "progress"]
    assert len(progress) >= 3
    assert all({"rows", "rows_per_s", "elapsed_s", "eta_s"} <= set(line) for line in progress)
    assert [line["rows"] for line in progress] == sorted(line["rows"] for line in progress)
    assert lines[-1]["event"] == "done" and lines[-1]["rows"] == 3_000


def test_json_lines_records_pass_through_exactly_as_written(
    tmp_path: Path, trained: Settings
) -> None:
    day, score = unused("day"), unused("score")
    features = as_records(training_data()[0].iloc[:40])
    records: list[dict[str, Any]] = [
        {ID: i, day: "2024-01-01", score: None if i % 2 else 1, **row}
        for i, row in enumerate(features)
    ]
    records[30][unused("nested")] = {"a": [1, 2]}  # a field only some records have
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    predict(trained, BatchJob(source, tmp_path / "out.jsonl", chunk_rows=7))
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [
        {k: v for k, v in s.items() if k in r} for s, r in zip(scored, records, strict=True)
    ] == records
    assert all(list(s)[-len(SCORE_COLUMNS) :] == SCORE_COLUMNS for s in scored)
    predict(trained, BatchJob(source, tmp_path / "few.jsonl", keep_columns=(day,)))
    first = json.loads((tmp_path / "few.jsonl").read_text().splitlines()[0])
    assert list(first)[: len(FEATURE_NAMES) + 2] == [day, *FEATURE_NAMES, "prediction"]


def test_a_stale_shard_record_never_completes_another_run(
    tmp_path: Path, trained: Settings
) -> None:
    keyed_rows(2_000).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out"
    for index in range(4):
        predict(trained, BatchJob(tmp_path / "in.csv", out, shard=Shard(index, 4)))
    assert (out / SUCCESS_FILE).exists()
    # One shard again, with other options: the other three shards of this run have not run.
    again = BatchJob(tmp_path / "in.csv", out, shard=Shard(0, 4), keep_columns=(), overwrite=True)
    predict(trained, again)
    assert not (out / SUCCESS_FILE).exists()


def test_a_shard_retried_after_its_run_completed_has_nothing_to_do(
    tmp_path: Path, trained: Settings
) -> None:
    keyed_rows(500).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out"
    run = trained.model_copy(update={"batch_run_id": "job-uid-1"})
    for index in range(2):
        predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(index, 2)))
    success = (out / SUCCESS_FILE).read_text()
    assert predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(1, 2))).rows == 0
    assert (out / SUCCESS_FILE).read_text() == success
    other = trained.model_copy(update={"batch_run_id": "job-uid-2"})
    with pytest.raises(InputError, match="already holds a complete result"):
        predict(other, BatchJob(tmp_path / "in.csv", out, shard=Shard(0, 2)))


def test_shards_running_at_once_add_up_to_a_single_run(tmp_path: Path, trained: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    keyed_rows(4_000).to_csv(tmp_path / "in.csv", index=False)
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "single"))
    jobs = [
        BatchJob(tmp_path / "in.csv", tmp_path / "at-once", shard=Shard(i, 4)) for i in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: predict(trained, job), jobs))
    pd.testing.assert_frame_equal(read_parts(tmp_path / "at-once"), read_parts(tmp_path / "single"))
    assert json.loads((tmp_path / "at-once" / SUCCESS_FILE).read_text())["rows"] == 4_000
    assert not list((tmp_path / "at-once").glob(".*partial*"))


def test_a_csv_value_arrow_cannot_read_is_located_as_arrow_reads_it(
    tmp_path: Path, trained: Settings
) -> None:
    rows = keyed_rows(10).astype({NUMERIC.name: object})
    rows.loc[2, NUMERIC.name] = "1_5"  # Python's float() reads it; Arrow does not
    rows.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InputError, match=rf"column '{re.escape(NUMERIC.name)}', row 3 has '1_5'"):
        predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv"))


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path, trained: Settings) -> None:
    (tmp_path / "in.csv").write_bytes(b"\xef\xbb\xbf" + keyed_rows(5).to_csv(index=False).encode())
    assert predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv")).rows == 5


def test_an_index_from_the_environment_needs_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    with pytest.raises(InputError, match="shard index 0 is set but not the shard count"):
        resolve_shard(None, None, Settings())


def test_the_dask_engine_scores_like_the_local_one(
    tmp_path: Path, trained: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from distributed import LocalCluster

    from {{ cookiecutter.package_name }}.batch.engines.dask import predict_on_dask

    data = tmp_path / "data"
    data.mkdir()
    for k in range(3):
        keyed_rows(200).to_csv(data / f"{k}.csv", index=False)
    predict(trained, BatchJob(data, tmp_path / "local"))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        predict_on_dask(trained, BatchJob(data, tmp_path / "on-dask"), cluster.scheduler_address)
    assert "workers 2" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read_parts(tmp_path / "on-dask"), read_parts(tmp_path / "local"))
    with pytest.raises(InputError, match="cannot reach the Dask scheduler at http://nowhere"):
        predict_on_dask(trained, BatchJob(data, tmp_path / "x"), "http://nowhere")
