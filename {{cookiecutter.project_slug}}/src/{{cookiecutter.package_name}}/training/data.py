"""Training data: CSV, Parquet or JSON Lines files read whole with pandas and checked against
the schema. The image holds the project's data/train/ where training looks by default."""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

from ..core.encoding import BadValue, encode_array
from ..core.formats import FORMATS, file_format
from ..core.schema import FEATURE_NAMES, FEATURES, SCHEMA, TARGET, InputError


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


def check_frame(frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The feature columns encoded as the model's float matrix (core/encoding.py), or
    InputError naming the column and row. Other columns are not looked at.

    `rows` holds each row's number in its file, from 1, as in a spreadsheet of the data
    without its header.
    """
    columns = {str(c) for c in frame.columns}
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise InputError(["columns"], f"missing column(s): {', '.join(missing)}")
    matrix = np.empty((len(frame), len(FEATURES)), dtype=np.float64)
    for j, feature in enumerate(FEATURES):
        try:
            matrix[:, j] = encode_array(feature, arrow_column(frame[feature.name]))
        except BadValue as bad:
            row = int(rows[bad.index])
            raise InputError(
                [feature.name, row], f"column {feature.name!r}, row {row} {bad.problem}"
            ) from None
    return matrix


def arrow_column(column: pd.Series) -> "pa.Array":
    """A pandas column as an Arrow array (NaN as null); a column of mixed Python types, as
    pandas reads text that is partly numbers, as text."""
    import pyarrow as pa

    try:
        return pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if pd.isna(v) else str(v) for v in column], pa.string())


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
    """Features and target from the files in `folder`.

    Returns the features, the target and a description of where they came from. Rows whose
    target is missing are left out, and the description says how many.
    """
    folder = training_channel(folder)
    files = training_files(folder) if folder.is_dir() else []
    if not files:
        raise InputError(
            [str(folder)],
            f"no training data in {folder}: put CSV, Parquet or JSON Lines files there "
            "(or set TRAINING_DATA_DIR)",
        )
    # Rows without a target are left out before their features are checked: schema infer
    # reads the features of the labelled rows only.
    columns: dict[str, None] = {}  # every file's columns, in order
    matrices, targets, unlabelled = [], [], 0
    for path in files:
        for first_row, chunk in numbered_chunks(path):
            if TARGET not in chunk.columns:
                raise InputError([], f"{path}: training data needs a {TARGET!r} column")
            labelled = chunk[TARGET].notna().to_numpy()
            unlabelled += int((~labelled).sum())
            rows = first_row + np.flatnonzero(labelled)
            kept = chunk[labelled].set_axis(rows - 1)  # the index counts the file's rows from 0
            try:
                matrices.append(check_frame(kept, rows))
                targets.append(target_values(kept[TARGET]))
            except InputError as error:
                raise InputError([], f"{path}: {error.message}") from None
            columns.update(dict.fromkeys(map(str, chunk.columns)))
    source = f"{len(files)} file(s) in {folder}"
    unused = [c for c in columns if c not in FEATURE_NAMES and c != TARGET]
    if unused:
        source += f"; not features, so not used: {', '.join(unused[:10])}"
        source += ", ..." if len(unused) > 10 else ""
    if not sum(map(len, targets)):
        raise InputError([TARGET], f"the target column {TARGET!r} is empty in {source}")
    if unlabelled:
        source += f"; {unlabelled} row(s) left out, their {TARGET!r} is missing"
    features = pd.DataFrame(np.concatenate(matrices), columns=list(FEATURE_NAMES))
    target = pd.concat(targets, ignore_index=True)
    return features, target, source


def target_values(given: pd.Series) -> pd.Series:
    """A classifier's labels as text, each a class of the schema, or a regressor's numbers."""
    return check_labels(label_text(given)) if SCHEMA.is_classification else numbers(given)


def numbered_chunks(path: Path) -> Iterator[tuple[int, pd.DataFrame]]:
    """The file's rows in chunks, each with the number of its first row (from 1)."""
    first_row = 1
    for chunk in read_chunks(path, 100_000):
        yield first_row, chunk
        first_row += len(chunk)


def label_text(column: pd.Series) -> pd.Series:
    """A classifier's labels as text: a float column of whole numbers as "1", not "1.0"."""
    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        column = column.astype("Int64")
    return column.astype(str)


def numbers(column: pd.Series) -> pd.Series:
    """A regressor's target as float64; a value that is not a finite number names its row."""
    values = pd.to_numeric(column, errors="coerce").astype("float64")
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        first = int(np.argmax(bad))
        row = int(column.index[first]) + 1
        raise InputError(
            [TARGET, row],
            f"column {TARGET!r}, row {row} has {column.iloc[first]!r}, which is not a finite "
            "number: a regression's target must be numbers",
        )
    return values


def check_labels(text: pd.Series) -> pd.Series:
    """The labels, each one of the schema's classes; the index is the rows' position in the
    data, so that an error names the row."""
    unknown = ~text.isin(SCHEMA.classes)
    if unknown.any():
        first = int(np.argmax(unknown.to_numpy()))
        row = int(text.index[first]) + 1  # the frame's index counts the rows from 0
        raise InputError(
            [TARGET, row],
            f"column {TARGET!r}, row {row} has {text.iloc[first]!r}, which is not one of the "
            f"schema's classes ({', '.join(SCHEMA.classes)})",
        )
    return text


def data_sha256(features: pd.DataFrame, target: pd.Series) -> str:
    """A hash of the training data's content, independent of the file format it came in."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(features.to_numpy(dtype=np.float64)).tobytes())
    digest.update("\n".join(target.astype(str)).encode())
    return digest.hexdigest()
