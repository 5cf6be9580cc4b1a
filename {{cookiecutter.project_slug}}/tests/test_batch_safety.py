"""Batch scoring that never loses input or vouches for wrong output: an output apart from the
input, one plan per run, run names that stay inside the output, files as open to group 0 as to
their owner, duplicate copies of a shard, and errors that name the file, column and row."""

import csv
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from {{ cookiecutter.package_name }}.batch.dataset import Shard
from {{ cookiecutter.package_name }}.batch.engines.local import predict
from {{ cookiecutter.package_name }}.batch.files import Partial
from {{ cookiecutter.package_name }}.batch.job import BatchJob
from {{ cookiecutter.package_name }}.batch.output import (
    PREDICTION,
    SHARDS_DIR,
    SUCCESS_FILE,
)
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, InputError
from {{ cookiecutter.package_name }}.core.settings import Settings, get_settings

from .conftest import ID, NUMERIC
from .test_batch_datasets import keyed_rows, read_parts


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def input_and_reference(folder: Path, count: int, trained: Settings) -> pd.DataFrame:
    """`count` keyed rows written to folder/in.csv, and the parts of one unsharded run over
    them: the reference every other run must equal."""
    rows = keyed_rows(count)
    rows.to_csv(folder / "alone.csv", index=False)
    predict(trained, BatchJob(folder / "alone.csv", folder / "alone"))
    rows.to_csv(folder / "in.csv", index=False)
    return read_parts(folder / "alone")


# --- the output apart from the input ---------------------------------------------------------


def _same_file(root: Path) -> tuple[Path, Path, str]:
    return root / "in.csv", root / "in.csv", "is the input file"


def _same_folder(root: Path) -> tuple[Path, Path, str]:
    return root / "data", root / "data", "holds the input file"


def _inside_the_input_folder(root: Path) -> tuple[Path, Path, str]:
    return root / "data", root / "data" / "scored", "lies inside the input folder"


def _around_the_input_file(root: Path) -> tuple[Path, Path, str]:
    return root / "data" / "part-00000.csv", root / "data", "holds the input file"


def _matched_by_the_input_pattern(root: Path) -> tuple[Path, Path, str]:
    return Path(f"{root}/data/**/*.csv"), root / "data" / "scored", "matches the input pattern"


@pytest.mark.parametrize(
    "layout",
    [
        _same_file,
        _same_folder,
        _inside_the_input_folder,
        _around_the_input_file,
        _matched_by_the_input_pattern,
    ],
)
def test_an_output_that_is_or_holds_the_input_is_refused_before_anything_is_written(
    tmp_path: Path, trained: Settings, layout: object
) -> None:
    rows = keyed_rows(300)
    rows.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "data").mkdir()
    rows[:150].to_csv(tmp_path / "data" / "part-00000.csv", index=False)
    rows[150:].to_csv(tmp_path / "data" / "part-00001.csv", index=False)
    before = contents(tmp_path)
    source, target, problem = layout(tmp_path)  # type: ignore[operator]
    with pytest.raises(InputError, match=rf"^--output: --output {target} {problem}"):
        predict(trained, BatchJob(source, target, overwrite=True))
    assert contents(tmp_path) == before
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == sorted(
        [*before, "data"]
    )


def test_the_cli_refuses_to_score_a_file_onto_itself(
    tmp_path: Path, trained: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    keyed_rows(50).to_csv(tmp_path / "in.csv", index=False)
    before = (tmp_path / "in.csv").read_bytes()
    source = str(tmp_path / "in.csv")
    os.environ["MODEL_DIR"] = str(trained.model_dir)
    get_settings.cache_clear()
    try:
        assert main(["predict", "--input", source, "--output", source]) == 1
    finally:
        del os.environ["MODEL_DIR"]
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"predict: failed: --output {source} is the input file {source}: scoring would "
        "overwrite its own input; write the output elsewhere"
    )
    assert (tmp_path / "in.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


# --- one plan per run --------------------------------------------------------------------------


def test_a_shard_of_another_count_stops_before_writing_and_the_run_completes_without_it(
    tmp_path: Path, trained: Settings
) -> None:
    alone = input_and_reference(tmp_path, 2_000, trained)
    out, run = tmp_path / "out", trained.model_copy(update={"batch_run_id": "nightly-1"})
    for index in (0, 1):
        predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(index, 4)))
    written = contents(out)
    with pytest.raises(
        InputError,
        match=r"run nightly-1 in .*: shard 3 of 3 differs from the run's plan: it has 3 shards, not 4\.",
    ):
        predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(2, 3)))
    assert contents(out) == written  # it wrote nothing
    predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(3, 4)))
    assert not (out / SUCCESS_FILE).exists()
    predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(2, 4)))
    success = json.loads((out / SUCCESS_FILE).read_text())
    assert success["rows"] == 2_000 and success["shards"] == 4 and success["plan"]["shards"] == 4
    pd.testing.assert_frame_equal(read_parts(out), alone)


def test_a_shard_that_finds_another_input_fails_and_the_run_never_completes(
    tmp_path: Path, trained: Settings
) -> None:
    keyed_rows(1_000).to_csv(tmp_path / "in.csv", index=False)
    out, run = tmp_path / "out", trained.model_copy(update={"batch_run_id": "nightly-2"})
    predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(0, 2)))
    keyed_rows(1_200).to_csv(tmp_path / "in.csv", index=False)  # the input changed meanwhile
    with pytest.raises(
        InputError, match=r"shard 2 of 2 differs .*: it has another input .*new BATCH_RUN_ID$"
    ):
        predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(1, 2)))
    with pytest.raises(
        InputError, match=r"shard 1 of 2 differs .*; other options \(the split, the columns kept"
    ):
        predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(0, 2), keep_columns=()))
    assert not (out / SUCCESS_FILE).exists()


def test_a_shard_whose_record_disagrees_with_the_run_fails_where_it_would_complete_it(
    tmp_path: Path, trained: Settings
) -> None:
    """The marker of each shard holds its plan: the last shard compares them all."""
    keyed_rows(1_000).to_csv(tmp_path / "in.csv", index=False)
    out, run = tmp_path / "out", trained.model_copy(update={"batch_run_id": "nightly-3"})
    predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(0, 2)))
    [record] = (out / SHARDS_DIR / "nightly-3").glob("00000-of-*.json")
    entry = json.loads(record.read_text())
    entry["plan"]["model_version"] = "another"
    record.write_text(json.dumps(entry))
    with pytest.raises(
        InputError, match=r"shard 1 of 2 differs .*: it has model version .*, not another\."
    ):
        predict(run, BatchJob(tmp_path / "in.csv", out, shard=Shard(1, 2)))
    assert not (out / SUCCESS_FILE).exists()


def test_a_part_another_run_rewrote_meanwhile_is_never_vouched_for(
    tmp_path: Path, trained: Settings
) -> None:
    keyed_rows(1_000).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out"
    predict(trained, BatchJob(tmp_path / "in.csv", out, shard=Shard(0, 2)))
    part = out / "part-00000.csv"
    part.write_bytes(part.read_bytes().replace(b"\n", b"\r\n", 1))  # another run's bytes
    with pytest.raises(InputError, match=r"part-00000\.csv is not the part its shard wrote"):
        predict(trained, BatchJob(tmp_path / "in.csv", out, shard=Shard(1, 2)))
    assert not (out / SUCCESS_FILE).exists()


@pytest.mark.parametrize(
    "run_id", ["../../escaped", "{tmp}/elsewhere", "a/b", "..", ".hidden", "x" * 129, "a b"]
)
def test_a_run_id_that_is_not_a_plain_name_is_refused(
    tmp_path: Path,
    trained: Settings,
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing is written: neither the output nor, through the run's folder under
    `_shards/`, anything beside or outside it."""
    keyed_rows(50).to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.setenv("MODEL_DIR", str(trained.model_dir))
    monkeypatch.setenv("BATCH_RUN_ID", run_id.format(tmp=tmp_path))
    get_settings.cache_clear()
    command = ["predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out")]
    try:
        code = main(command)
    finally:
        get_settings.cache_clear()
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("configuration error: BATCH_RUN_ID: Value error, must be a plain name")
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


def test_an_empty_run_id_is_no_run_id() -> None:
    assert Settings(batch_run_id="").batch_run_id is None


# --- permissions and duplicate shards -------------------------------------------------------


def group_like_owner(path: Path) -> bool:
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode & 0o070 == (mode & 0o700) >> 3


def test_outputs_are_as_open_to_group_0_as_to_their_owner(
    tmp_path: Path, trained: Settings
) -> None:
    keyed_rows(500).to_csv(tmp_path / "in.csv", index=False)
    umask = os.umask(0o022)
    try:
        for index in range(2):
            predict(
                trained, BatchJob(tmp_path / "in.csv", tmp_path / "a" / "b", shard=Shard(index, 2))
            )
        predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "c" / "out.csv"))
    finally:
        os.umask(umask)
    written = [
        *(tmp_path / "a").rglob("*"),
        tmp_path / "a",
        tmp_path / "c",
        tmp_path / "c" / "out.csv",
    ]
    assert len(written) > 8 and (tmp_path / "a" / "b" / SUCCESS_FILE) in written
    assert all(group_like_owner(p) for p in written), [
        (str(p), oct(p.stat().st_mode)) for p in written if not group_like_owner(p)
    ]


def test_a_live_duplicate_keeps_its_file_and_what_a_dead_one_left_is_removed(
    tmp_path: Path, trained: Settings
) -> None:
    alone = input_and_reference(tmp_path, 1_000, trained)
    out = tmp_path / "out"
    predict(trained, BatchJob(tmp_path / "in.csv", out, shard=Shard(0, 2)))
    live = Partial(out / "part-00001.csv")  # a second copy of shard 2, still writing
    dead = out / ".part-00001.csv.0123456789ab.partial"  # a killed copy's
    dead.write_text("half a part")
    predict(trained, BatchJob(tmp_path / "in.csv", out, shard=Shard(1, 2)))
    assert (out / SUCCESS_FILE).exists() and live.path.exists() and not dead.exists()
    live.path.write_bytes((out / "part-00001.csv").read_bytes())
    live.commit()  # the last copy to finish wins, with the same bytes
    pd.testing.assert_frame_equal(read_parts(out), alone)


def test_duplicate_processes_of_a_shard_give_the_output_of_one(
    tmp_path: Path, trained: Settings
) -> None:
    alone = input_and_reference(tmp_path, 60_000, trained)
    out = tmp_path / "out"
    src = str(Path(__file__).resolve().parents[1] / "src")  # the package, as pytest finds it
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        "MODEL_DIR": str(trained.model_dir),
        "BATCH_RUN_ID": "dup-1",
    }
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "predict"]
    command += ["--input", str(tmp_path / "in.csv"), "--output", str(out), "--shard-count", "2"]
    processes = [
        subprocess.Popen(
            [*command, "--shard-index", index],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in ("1", "1", "0", "1")
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    assert json.loads((out / SUCCESS_FILE).read_text())["rows"] == 60_000
    pd.testing.assert_frame_equal(read_parts(out), alone)
    assert not list(out.glob(".*partial*"))


def test_a_rerun_removes_what_a_killed_run_left_beside_a_file_output(
    tmp_path: Path, trained: Settings
) -> None:
    keyed_rows(100).to_csv(tmp_path / "in.csv", index=False)
    dead = tmp_path / ".out.csv.0123456789ab.partial"
    dead.write_text("half a file")
    live = Partial(tmp_path / "out.csv")
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv"))
    assert not dead.exists() and live.path.exists()
    live.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


# --- bad files: the file, the column and the row ---------------------------------------------


def test_a_column_named_twice_is_named(tmp_path: Path, trained: Settings) -> None:
    rows = keyed_rows(10)
    pd.concat([rows, rows[[FEATURE_NAMES[0]]]], axis=1).to_csv(tmp_path / "in.csv", index=False)
    named = rf"in\.csv: column '{FEATURE_NAMES[0]}' appears 2 times in its header"
    with pytest.raises(InputError, match=named):
        predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv"))


def test_a_header_of_ten_megabytes_is_an_error_not_a_traceback(
    tmp_path: Path, trained: Settings
) -> None:
    (tmp_path / "in.csv").write_text("a" * 10_000_000 + "\n1\n")
    with pytest.raises(InputError, match=r"in\.csv: cannot read it as csv: field larger than"):
        predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv"))


@pytest.mark.parametrize(
    "column",
    [pa.array([1, 2], pa.timestamp("us")), pa.array([True, False])],
    ids=["timestamps", "booleans"],
)
def test_a_parquet_feature_of_another_type_names_its_column(
    tmp_path: Path, trained: Settings, column: pa.Array
) -> None:
    rows = pa.Table.from_pandas(keyed_rows(2), preserve_index=False)
    rows = rows.set_column(rows.schema.get_field_index(NUMERIC.name), NUMERIC.name, column)
    pq.write_table(rows, tmp_path / "in.parquet")
    with pytest.raises(
        InputError,
        match=rf"in\.parquet: column '{NUMERIC.name}', row 1 holds {re.escape(str(column.type))} values",
    ):
        predict(trained, BatchJob(tmp_path / "in.parquet", tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def test_a_timestamp_column_passes_through_parquet(tmp_path: Path, trained: Settings) -> None:
    rows = pa.Table.from_pandas(keyed_rows(3), preserve_index=False)
    rows = rows.append_column("seen", pa.array([1, 2, 3], pa.timestamp("us")))
    pq.write_table(rows, tmp_path / "in.parquet")
    predict(trained, BatchJob(tmp_path / "in.parquet", tmp_path / "out.parquet"))
    assert pq.read_table(tmp_path / "out.parquet").column("seen") == rows.column("seen")


def test_two_json_records_on_one_line_name_the_line(tmp_path: Path, trained: Settings) -> None:
    lines = keyed_rows(6).to_json(orient="records", lines=True).splitlines()
    lines[3] = lines[3] + " " + lines[4]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"in\.jsonl: line 4 is not one JSON object"):
        predict(trained, BatchJob(tmp_path / "in.jsonl", tmp_path / "out.jsonl"))
    assert [p.name for p in tmp_path.iterdir()] == ["in.jsonl"]


def test_a_record_that_has_a_field_scoring_adds_is_named(tmp_path: Path, trained: Settings) -> None:
    records = [
        json.loads(line)
        for line in keyed_rows(8).to_json(orient="records", lines=True).splitlines()
    ]
    records[5][PREDICTION] = "mine"
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(
        InputError, match=rf"in\.jsonl: column '{PREDICTION}', row 6 is a field that scoring adds"
    ):
        predict(trained, BatchJob(tmp_path / "in.jsonl", tmp_path / "out.jsonl"))


def test_a_column_that_scoring_adds_is_refused_unless_left_out(
    tmp_path: Path, trained: Settings
) -> None:
    rows = keyed_rows(20)
    rows[PREDICTION] = "theirs"
    rows.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InputError, match=rf"its column '{PREDICTION}' has the name of a column"):
        predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv"))
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv", keep_columns=(ID,)))
    assert list(pd.read_csv(tmp_path / "out.csv").columns).count(PREDICTION) == 1


def test_a_hundred_thousand_extra_columns_pass_through(tmp_path: Path, trained: Settings) -> None:
    """Linear in the columns: every lookup of a name is a set's or an index's (the batch
    benchmark times it, CSV and Parquet; a quadratic lookup would take hours here)."""
    rows = keyed_rows(5)
    names, values = [f"extra_{i}" for i in range(100_000)], [str(i) for i in range(100_000)]
    first, *lines = rows.to_csv(index=False).splitlines()  # missing values as pandas writes
    wide = [",".join([first, *names]), *(",".join([line, *values]) for line in lines)]
    (tmp_path / "in.csv").write_text("\n".join(wide) + "\n")
    predict(trained, BatchJob(tmp_path / "in.csv", tmp_path / "out.csv"))
    with (tmp_path / "out.csv").open(newline="") as handle:
        header, *scored = list(csv.reader(handle))
    width = len(rows.columns)
    assert header[: width + len(names)] == [*rows.columns, *names]
    assert [row[width : width + len(names)] for row in scored] == [values] * len(rows)
    assert [row[0] for row in scored] == list(rows[ID])
