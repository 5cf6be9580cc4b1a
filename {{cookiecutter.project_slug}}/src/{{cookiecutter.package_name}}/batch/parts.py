"""One piece of the input scored into one part of the output, in bounded memory.

`score_piece` is what every engine runs for each piece: the local engine one after another in
this process, the Dask engine (engines/dask.py) on a cluster's workers.
"""

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..core.artifact import Artifact, load_artifact, sha256_file
from ..core.model_source import model_folder
from ..core.predict import predict_matrix
from ..core.schema import FEATURE_NAMES, TASK, InputError
from ..core.storage import Location, ObjectPath, upload
from ..core.uris import redacted
from .dataset import Piece, rows_before
from .files import Partial
from .output import PREDICTION, PartResult, probability_column
from .tables import (
    BackgroundWriter,
    BadValue,
    LinesAndRecordsDiffer,
    PartWriter,
    feature_matrix,
    json_lines,
    line_not_one_record,
    read_piece,
    splice_predictions,
)

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Scoring:
    """What every piece of one job is scored with; small, so it travels to Dask workers."""

    columns: tuple[str, ...]
    keep: tuple[str, ...]
    chunk_rows: int
    model_dir: str
    model_version: str
    runtime: Literal["onnx", "native"]  # chosen once, from MODEL_RUNTIME and the artifact
    model_uri: str | None = None  # when set, every process fetches the model from there
    cache_dir: str = "model-cache"

    @property
    def source(self) -> str:
        return self.model_uri or self.model_dir


_ARTIFACTS: dict[str, Artifact] = {}


def remember(source: str, artifact: Artifact) -> None:
    """Keep an artifact the job has already loaded, so that its pieces need not load it again."""
    _ARTIFACTS[source] = artifact


def artifact_for(scoring: Scoring) -> Artifact:
    """The job's model, loaded once per process: a Dask worker keeps it between pieces, and
    loads the folder again when a job asks for another version (after a retraining)."""
    artifact = _ARTIFACTS.get(scoring.source)
    if artifact is None or model_version(artifact) != scoring.model_version:
        folder = model_folder(Path(scoring.model_dir), scoring.model_uri, Path(scoring.cache_dir))
        artifact = load_artifact(folder, scoring.runtime)
        _ARTIFACTS[scoring.source] = artifact
    if model_version(artifact) != scoring.model_version:
        raise InputError(
            ["model"],
            f"the model in {redacted(scoring.source)} is version {model_version(artifact)}, "
            f"not the job's {scoring.model_version}: every process of a job must load the "
            "same model",
        )
    return artifact


def model_version(artifact: Artifact) -> str:
    return str(artifact.metadata.get("model_version", ""))


def score_piece(
    piece: Piece,
    scoring: Scoring,
    target: Location,
    on_rows: Callable[[int, int], None] | None = None,
) -> PartResult:
    """Score `piece` into the file `target`: on disk, written under a temporary name and then
    renamed; in an object store, written to a local temporary file first (TMPDIR), then
    uploaded whole."""
    if not isinstance(target, ObjectPath):
        return score_into(piece, scoring, target, on_rows)
    with tempfile.TemporaryDirectory(prefix="part-") as staging:
        local = score_into(piece, scoring, Path(staging) / target.name, on_rows)
        if local.name is None:
            return local
        stored = upload(Path(staging) / local.name, target)
    return replace(local, stored_ns=stored.mtime_ns)


def score_into(
    piece: Piece,
    scoring: Scoring,
    target: Path,
    on_rows: Callable[[int, int], None] | None = None,
) -> PartResult:
    """Score `piece` into the local file `target`, written under a temporary name and then
    renamed."""
    import pyarrow as pa

    artifact = artifact_for(scoring)
    classes = [str(c) for c in artifact.metadata["classes"]]
    partial = Partial(target)
    try:
        writer = BackgroundWriter(PartWriter(partial.path, piece.kind))
    except BaseException:
        partial.discard()
        raise
    # JSON Lines: the records are passed through from the file's own lines, spliced.
    lines = json_lines(piece) if piece.kind == "jsonl" else None
    keep_all = set(scoring.keep) == {c for c in scoring.columns if c not in FEATURE_NAMES}
    rows = 0
    try:
        on_bytes = (lambda n: on_rows(0, n)) if on_rows is not None else None
        batches = read_piece(piece, scoring.columns, scoring.keep, scoring.chunk_rows, on_bytes)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            matrix = feature_matrix(batch, rows)
            labels, probabilities = predict_matrix(artifact.model, matrix)
            if lines is not None:
                keep = None if keep_all else scoring.keep
                writer.write(
                    splice_predictions(lines, labels.tolist(), probabilities, classes, keep, rows)
                )
            else:
                arrays = [batch.column(i) for i in range(batch.num_columns)]
                names = list(batch.schema.names)
                arrays.append(label_array(labels))
                names.append(PREDICTION)
                if probabilities is not None:
                    for k, name in enumerate(classes):
                        arrays.append(pa.array(probabilities[:, k]))
                        names.append(probability_column(name))
                writer.write(pa.RecordBatch.from_arrays(arrays, names=names))
            rows += batch.num_rows
            if on_rows is not None:
                on_rows(batch.num_rows, 0)
        if lines is not None and next(lines, None) is not None:
            raise LinesAndRecordsDiffer()  # more lines than records
        writer.close()
        if rows == 0:
            partial.discard()
            return PartResult(piece.index, None, 0, None)
        partial.commit()
    except BadValue as bad:
        close_quietly(writer)
        partial.discard()
        row = rows_before(piece) + bad.index + 1
        raise InputError(
            [bad.name, row], f"{piece.path}: column {bad.name!r}, row {row} {bad.problem}"
        ) from None
    except LinesAndRecordsDiffer:
        close_quietly(writer)
        partial.discard()
        raise line_not_one_record(piece) from None
    except InputError as error:
        close_quietly(writer)
        partial.discard()
        if error.message.startswith(piece.path):
            raise
        raise InputError(error.location, f"{piece.path}: {error.message}") from None
    except BaseException:
        close_quietly(writer)
        partial.discard()
        raise
    return PartResult(piece.index, target.name, rows, sha256_file(target), target.stat().st_size)


def label_array(labels: np.ndarray) -> "pa.Array":
    """A classifier's labels as an Arrow string column (numeric classes become their text); a
    regressor's values as float64."""
    import pyarrow as pa

    if TASK == "regression":
        return pa.array(labels, pa.float64())
    array = pa.array(labels)
    return array if array.type == pa.string() else array.cast(pa.string())


def close_quietly(writer: BackgroundWriter) -> None:
    """Close after a failure: the failure is what the caller reports."""
    with contextlib.suppress(Exception):
        writer.close()
