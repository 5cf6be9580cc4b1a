"""Batch scoring of datasets: pass-through columns, folders and globs, shards and markers."""

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.config import Settings, get_settings
from {{ cookiecutter.package_name }}.dataset import Shard, find_dataset, plan, resolve_shard
from {{ cookiecutter.package_name }}.features import FEATURE_NAMES, InputError, load_sample
from {{ cookiecutter.package_name }}.predict import SUCCESS_FILE, BatchJob, predict


def keyed_rows(count: int) -> pd.DataFrame:
    """`count` iris-like rows with an id (leading zeros: it must pass through as text) and
    a free-text note around the features."""
    features, _ = load_sample()
    rows = features.iloc[np.arange(count) % len(features)].reset_index(drop=True)
    rows.insert(0, "id", [f"{i:07d}" for i in range(count)])
    rows["note"] = [f'row {i}, "quoted"' for i in range(count)]
    return rows


def read_parts(folder: Path, kind: str = "csv") -> pd.DataFrame:
    """The output folder's parts in name order, as the one table they make up."""
    parts = sorted(folder.glob(f"part-*.{kind}"))
    assert parts, f"no parts in {folder}"
    if kind == "parquet":
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return pd.concat([pd.read_csv(p, dtype={"id": str}) for p in parts], ignore_index=True)


def test_extra_columns_pass_through_in_order(tmp_path: Path, trained: Settings) -> None:
    rows = keyed_rows(300)
    rows.to_csv(tmp_path / "in.csv", index=False)
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=50))
    scored = pd.read_csv(tmp_path / "out.csv", dtype={"id": str})
    assert list(scored.columns[: len(rows.columns)]) == list(rows.columns)
    pd.testing.assert_frame_equal(scored[rows.columns], rows, check_dtype=False)
    assert "prediction" in scored.columns


def test_keep_columns_selects_the_extra_columns(tmp_path: Path, trained: Settings) -> None:
    keyed_rows(20).to_csv(tmp_path / "in.csv", index=False)
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "a.csv", keep_columns=("id",)))
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "b.csv", keep_columns=()))
    assert list(pd.read_csv(tmp_path / "a.csv").columns[:5]) == ["id", *FEATURE_NAMES]
    assert list(pd.read_csv(tmp_path / "b.csv").columns[:4]) == list(FEATURE_NAMES)
    with pytest.raises(InputError, match="no such extra column: colour"):
        predict(
            trained, BatchJob(tmp_path / "in.csv", tmp_path / "c.csv", keep_columns=("colour",))
        )


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
        read = lambda folder: pd.concat(  # noqa: E731
            [pd.read_json(p, lines=True, dtype={"id": str}) for p in sorted(folder.glob("part-*"))],
            ignore_index=True,
        )
        single_rows, sharded_rows = read(single), read(sharded)
    else:
        single_rows, sharded_rows = read_parts(single, kind), read_parts(sharded, kind)
    pd.testing.assert_frame_equal(sharded_rows, single_rows)
    assert list(sharded_rows["id"]) == list(rows["id"])
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
    assert list(read_parts(tmp_path / "from-folder")["id"]) == list(rows["id"])
    assert list(read_parts(tmp_path / "from-glob")["id"]) == list(rows["id"][:60])


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
    keyed_rows(5).drop(columns="note").to_csv(differ / "b.csv", index=False)
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
    rows = keyed_rows(1_000).astype({"petal_width": object})
    rows.loc[876, "petal_width"] = "n/a"
    rows.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InputError, match=r"in\.csv: column 'petal_width', row 877 has 'n/a'"):
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
