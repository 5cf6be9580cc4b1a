"""Batch scoring: formats, chunking, and clear errors for bad files."""

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.batch.engines.local import predict
from {{ cookiecutter.package_name }}.batch.job import BatchJob
from {{ cookiecutter.package_name }}.batch.tables import BackgroundWriter, PartWriter
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, InputError
from {{ cookiecutter.package_name }}.core.settings import Settings

from .conftest import (
    EXAMPLE,
    NUMERIC,
    REFUSING,
    REGRESSION,
    REQUIRED,
    SCORE_COLUMNS,
    as_table,
    csv_line,
    predicted_rows,
    training_data,
    training_table,
    wrong_value,
)

WRITERS = {
    "csv": lambda frame, path: frame.to_csv(path, index=False),
    "parquet": lambda frame, path: frame.to_parquet(path, index=False),
    # pandas' most digits: its default of 10 would change a regressor's values.
    "jsonl": lambda frame, path: frame.to_json(
        path, orient="records", lines=True, double_precision=15
    ),
}


def predict_file(settings: Settings, source: Path, target: Path, chunk_rows: int) -> int:
    return predict(settings, BatchJob(source, target, chunk_rows=chunk_rows)).rows


READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "csv": pd.read_csv,
    "parquet": pd.read_parquet,
    "jsonl": lambda path: pd.read_json(path, lines=True),
}


def table(names: Sequence[str], *lines: str) -> str:
    """A CSV file's content: a header of these names, then the lines."""
    return "".join(line + "\n" for line in (",".join(names), *lines))


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_scores_every_row_in_small_chunks(
    kind: str, tmp_path: Path, trained: Settings, served_model: Any
) -> None:
    features, _ = training_data()
    source, output = tmp_path / f"in.{kind}", tmp_path / f"out.{kind}"
    WRITERS[kind](as_table(features), source)
    assert predict_file(trained, source, output, chunk_rows=7) == len(features)
    scored = READERS[kind](output)
    assert list(scored.columns) == [*FEATURE_NAMES, *SCORE_COLUMNS]
    assert len(scored) == len(features)
    expected = predicted_rows(served_model, features.to_numpy())
    if REGRESSION:  # the values, as numbers
        assert scored["prediction"].dtype == np.float64
        np.testing.assert_allclose(scored["prediction"], expected, rtol=1e-12)
        return
    assert scored["prediction"].astype(str).tolist() == expected
    assert scored.filter(like="probability_").sum(axis=1).round(6).eq(1).all()


def test_chunked_result_equals_one_chunk(tmp_path: Path, trained: Settings) -> None:
    features, _ = training_table()
    features.to_csv(tmp_path / "in.csv", index=False)
    predict_file(trained, tmp_path / "in.csv", tmp_path / "a.csv", chunk_rows=1000)
    predict_file(trained, tmp_path / "in.csv", tmp_path / "b.csv", chunk_rows=13)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            table(FEATURE_NAMES[:-1], ",".join(str(EXAMPLE[n]) for n in FEATURE_NAMES[:-1])),
            f"missing column(s): {FEATURE_NAMES[-1]}",
        ),
        (
            table(
                FEATURE_NAMES,
                csv_line(EXAMPLE),
                csv_line({**EXAMPLE, REFUSING[-1].name: wrong_value(REFUSING[-1])}),
            ),
            f"column {REFUSING[-1].name!r}, row 2",
        ),
        (
            table(FEATURE_NAMES, csv_line(EXAMPLE), csv_line({**EXAMPLE, REQUIRED.name: ""})),
            f"column {REQUIRED.name!r}, row 2 is empty",
        ),
    ],
)
def test_bad_file_is_rejected_with_column_and_row(
    content: str, message: str, tmp_path: Path, trained: Settings
) -> None:
    (tmp_path / "in.csv").write_text(content)
    with pytest.raises(InputError) as error:
        predict_file(trained, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=1)
    assert message in error.value.message
    assert not list(tmp_path.glob("*out*")), "a partial output was left behind"


def test_cli_exits_1_with_the_reason(
    tmp_path: Path,
    trained: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODEL_DIR", str(trained.model_dir))
    from {{ cookiecutter.package_name }}.core.settings import get_settings

    get_settings.cache_clear()
    (tmp_path / "in.csv").write_text(
        table(FEATURE_NAMES, csv_line({**EXAMPLE, NUMERIC.name: "inf"}))
    )
    code = main(
        ["predict", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]
    )
    get_settings.cache_clear()
    assert code == 1
    assert f"column {NUMERIC.name!r}, row 1" in capsys.readouterr().err


def test_output_format_must_match_input(tmp_path: Path, trained: Settings) -> None:
    training_table()[0].to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InputError, match="same format"):
        predict_file(trained, tmp_path / "in.csv", tmp_path / "out.parquet", chunk_rows=10)


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "predict", "serve"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        assert command in capsys.readouterr().out


def test_header_only_file_is_rejected_clearly(tmp_path: Path, trained: Settings) -> None:
    (tmp_path / "in.csv").write_text(",".join(FEATURE_NAMES) + "\n")
    with pytest.raises(InputError, match="no rows to score"):
        predict_file(trained, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=10)


def test_a_row_of_another_width_names_the_file_and_row(tmp_path: Path, trained: Settings) -> None:
    good = csv_line(EXAMPLE)
    (tmp_path / "in.csv").write_text(table(FEATURE_NAMES, good, good, good + ",5,6", good))
    width = len(FEATURE_NAMES)
    with pytest.raises(
        InputError, match=rf"in\.csv: row 3 has {width + 2} fields, the header {width}$"
    ):
        predict_file(trained, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=10)


def test_json_lines_output_has_no_blank_lines(tmp_path: Path, trained: Settings) -> None:
    features, _ = training_table()
    features.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    predict_file(trained, tmp_path / "in.jsonl", tmp_path / "out.jsonl", chunk_rows=7)
    lines = (tmp_path / "out.jsonl").read_text().split("\n")
    assert lines[-1] == "" and all(lines[:-1]) and len(lines) == len(features) + 1


def test_bad_setting_is_named_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from {{ cookiecutter.package_name }}.core.settings import get_settings

    monkeypatch.setenv("PORT", "eighty")
    get_settings.cache_clear()
    try:
        assert main(["serve"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert err.startswith("configuration error: PORT:") and "Traceback" not in err


def test_the_sample_input_matches_the_features_and_scores(
    tmp_path: Path, trained: Settings
) -> None:
    """data/sample.csv is what `make predict` scores on a fresh project: it must follow
    FEATURES when they change. `schema infer` writes it with the data file's other columns
    (an id, say) beside the features, in the file's order: they pass through the scoring."""
    sample = Path(__file__).resolve().parents[1] / "data" / "sample.csv"
    columns = list(pd.read_csv(sample, nrows=0).columns)
    assert [name for name in columns if name in FEATURE_NAMES] == list(FEATURE_NAMES)
    rows = predict_file(trained, sample, tmp_path / "out.csv", chunk_rows=1000)
    assert rows == len(pd.read_csv(sample)) > 0
    assert list(pd.read_csv(tmp_path / "out.csv", nrows=0).columns) == [*columns, *SCORE_COLUMNS]


def test_a_signal_while_closing_the_part_writer_cannot_hang_the_job(tmp_path: Path) -> None:
    """SIGTERM raises in the main thread wherever it waits: here while it hands the writer
    thread its last item. The close that follows (the job's cleanup) must still end it."""
    writer = BackgroundWriter(PartWriter(tmp_path / "part.csv", "csv"))
    put = writer._queue.put
    interrupted: list[object] = []

    def put_interrupted_once(item: Any, *args: Any, **kwargs: Any) -> None:
        if item is None and not interrupted:
            interrupted.append(item)
            raise KeyboardInterrupt  # as the signal handler's exception would
        put(item, *args, **kwargs)

    # A stand-in for the queue's own put, which a signal would interrupt.
    writer._queue.put = put_interrupted_once  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        writer.close()
    cleanup = threading.Thread(target=writer.close, daemon=True)
    cleanup.start()
    cleanup.join(timeout=10)
    assert not cleanup.is_alive(), "close() waits forever for a writer thread that never ends"
