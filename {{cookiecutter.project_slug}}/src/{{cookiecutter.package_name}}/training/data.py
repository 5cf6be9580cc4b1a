"""Training data: CSV, Parquet or JSON Lines files read whole with pandas, checked, or the
bundled sample."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.formats import FORMATS, file_format
from ..core.schema import FEATURE_NAMES, TARGET, InputError, load_sample


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file as DataFrames of at most `chunk_rows` rows; memory stays bounded.

    A file that cannot be parsed raises InputError naming the file and the parser's reason.
    """
    kind = file_format(path)
    if not path.is_file():
        raise InputError([str(path)], f"{path}: no such file")
    try:
        yield from _read_chunks(path, kind, chunk_rows)
    except InputError:
        raise
    except (
        ValueError,
        UnicodeDecodeError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
    ) as error:
        # pyarrow's errors derive from ValueError too.
        raise InputError([str(path)], f"{path}: cannot read it as {kind}: {error}") from None


def _read_chunks(path: Path, kind: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if kind == "csv":
        yield from pd.read_csv(path, chunksize=chunk_rows)
    elif kind == "jsonl":
        yield from pd.read_json(path, lines=True, chunksize=chunk_rows)
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def check_frame(
    frame: pd.DataFrame, first_row: int, allowed_extra: tuple[str, ...] = ()
) -> np.ndarray:
    """The feature columns as a float matrix, or InputError naming the column and row.

    Rows are numbered from 1, as in a spreadsheet of the data without its header.
    """
    columns = [str(c) for c in frame.columns]
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise InputError(["columns"], f"missing column(s): {', '.join(missing)}")
    extra = [name for name in columns if name not in FEATURE_NAMES and name not in allowed_extra]
    if extra:
        raise InputError(["columns"], f"unexpected column(s): {', '.join(extra)}")
    matrix = np.empty((len(frame), len(FEATURE_NAMES)), dtype=np.float64)
    for j, name in enumerate(FEATURE_NAMES):
        column = frame[name]
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raw = column.iloc[i]
            problem = "is empty" if pd.isna(raw) else f"has {raw!r}, which is not a finite number"
            raise InputError(
                [name, first_row + i], f"column {name!r}, row {first_row + i} {problem}"
            )
        matrix[:, j] = values
    return matrix


def training_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)


def training_channel(folder: Path) -> Path:
    """The training folder. In SageMaker's layout (.../input/data/<channel>), if it does not
    exist but exactly one other channel does (SageMaker names channels after `fit()`'s
    inputs, e.g. "training"), that channel."""
    sagemaker_layout = folder.parent.name == "data" and folder.parent.parent.name == "input"
    if folder.is_dir() or not sagemaker_layout or not folder.parent.is_dir():
        return folder
    channels = sorted(p for p in folder.parent.iterdir() if p.is_dir())
    if len(channels) == 1:
        return channels[0]
    if len(channels) > 1:
        names = ", ".join(p.name for p in channels)
        raise InputError(
            [str(folder)],
            f"{folder} does not exist and there are several channels ({names}); "
            f"set TRAINING_DATA_DIR to the one to train on",
        )
    return folder


def load_training_data(folder: Path) -> tuple[pd.DataFrame, pd.Series, str]:
    """Features and target from the files in `folder`, else the bundled sample.

    Returns the features, the target and a description of where they came from.
    """
    folder = training_channel(folder)
    files = training_files(folder) if folder.is_dir() else []
    if not files:
        features, target = load_sample()
        return features, target, "the bundled iris sample"
    frames = [chunk for path in files for chunk in read_chunks(path, 100_000)]
    frame = pd.concat(frames, ignore_index=True)
    if TARGET not in frame.columns:
        raise InputError(["columns"], f"training data needs a {TARGET!r} column with the labels")
    matrix = check_frame(frame, first_row=1, allowed_extra=(TARGET,))
    features = pd.DataFrame(matrix, columns=list(FEATURE_NAMES))
    target = frame[TARGET].astype(str)
    return features, target, f"{len(files)} file(s) in {folder}"


def data_sha256(features: pd.DataFrame, target: pd.Series) -> str:
    """A hash of the training data's content, independent of the file format it came in."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(features.to_numpy(dtype=np.float64)).tobytes())
    digest.update("\n".join(target.astype(str)).encode())
    return digest.hexdigest()
