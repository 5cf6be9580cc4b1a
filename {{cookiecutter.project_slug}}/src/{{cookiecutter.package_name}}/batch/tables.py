"""Reading and writing tabular files for batch scoring: CSV, Parquet and JSON Lines, in
bounded chunks.

Batch scoring reads pieces (see dataset.py) with Arrow's streaming readers and writes parts with
Arrow's writers; training reads its files with pandas (training/data.py), which batch scoring
never imports.
"""

import io
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.encoding import BadValue as EncodingError
from ..core.encoding import encode_array
from ..core.schema import FEATURE_NAMES, FEATURES, InputError
from ..core.storage import arrow_input, open_input, open_raw
from .dataset import rows_before
from .output import PREDICTION, probability_column

NUMBERS = ("number", "integer")

if TYPE_CHECKING:
    import pyarrow as pa

    from .dataset import Piece


# ---------------------------------------------------------------------------------------
# Batch scoring: Arrow record batches in, Arrow record batches out
# ---------------------------------------------------------------------------------------


class RangeFile(io.RawIOBase):
    """The bytes [start, end) of a file, as a stream Arrow's readers can read."""

    def __init__(
        self, path: str, start: int, end: int, meter: Callable[[int], None] | None = None
    ) -> None:
        self._handle = open_raw(path)
        self._handle.seek(start)
        self._left = end - start
        self._meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[: self._left]
        count = self._handle.readinto(view) or 0
        self._left -= count
        if self._meter is not None:
            self._meter(count)
        return count

    def close(self) -> None:
        self._handle.close()
        super().close()


def block_bytes(path: str, chunk_rows: int) -> int:
    """Arrow's CSV and JSON readers read blocks of bytes: about `chunk_rows` rows' worth."""
    with open_input(path) as handle:
        handle.readline()  # a CSV header is no row
        sample = handle.read(64 * 1024)
    lines = max(sample.count(b"\n"), 1)
    return int(min(max(chunk_rows * len(sample) / lines, 1024), 64 * 1024 * 1024))


class BadValue(Exception):
    """A feature value that is not a finite number, at row `index` of a piece (from 0)."""

    def __init__(self, name: str, index: int, problem: str) -> None:
        super().__init__(name, index, problem)
        self.name, self.index, self.problem = name, index, problem


def read_piece(
    piece: "Piece",
    columns: Sequence[str],
    keep: Sequence[str],
    chunk_rows: int,
    meter: Callable[[int], None] | None = None,
) -> Iterator["pa.RecordBatch"]:
    """The piece's rows as record batches holding the features (as read) and the kept columns.
    `meter` hears how many bytes were read, for progress.

    A file that cannot be parsed raises InputError naming the file and the parser's reason;
    a CSV value that is not a number raises BadValue.
    """
    import pyarrow as pa

    chosen = set(FEATURE_NAMES) | set(keep)
    wanted = [name for name in columns if name in chosen]
    try:
        if piece.kind == "parquet":
            import pyarrow.parquet as pq

            with arrow_input(piece.path) as opened:
                source = pq.ParquetFile(opened)
                groups = list(piece.row_groups) or None
                yield from source.iter_batches(
                    batch_size=chunk_rows, row_groups=groups, columns=wanted
                )
            return
        if piece.size == 0:  # a header and no rows
            return
        block = block_bytes(piece.path, chunk_rows)
        with RangeFile(piece.path, piece.start, piece.end, meter) as stream:
            if piece.kind == "csv":
                import pyarrow.csv as pcsv

                # Numbers as numbers; booleans and categories as text, for the encoder.
                types = {
                    f.name: pa.float64() if f.type in NUMBERS else pa.string() for f in FEATURES
                }
                types.update({name: pa.string() for name in keep})  # passed through as written
                reader = pcsv.open_csv(
                    stream,
                    read_options=pcsv.ReadOptions(column_names=list(columns), block_size=block),
                    convert_options=pcsv.ConvertOptions(
                        column_types=types,
                        include_columns=wanted,
                        strings_can_be_null=False,
                        null_values=[""],  # "NA" or "n/a" in a feature is an error, not a gap
                    ),
                )
            else:
                import pyarrow.json as pjson

                kinds = {"boolean": pa.bool_(), "category": pa.string()}
                features = pa.schema([(f.name, kinds.get(f.type, pa.float64())) for f in FEATURES])
                reader = pjson.open_json(
                    stream,
                    read_options=pjson.ReadOptions(block_size=block),
                    # The features only: other fields are passed through from the lines
                    # themselves (json_lines), exactly as written.
                    parse_options=pjson.ParseOptions(
                        explicit_schema=features, unexpected_field_behavior="ignore"
                    ),
                )
            for batch in reader:
                present = set(batch.schema.names)
                yield batch.select([name for name in wanted if name in present])
    except (pa.ArrowException, ValueError, UnicodeDecodeError) as error:
        if isinstance(error, InputError):
            raise
        if piece.kind == "csv" and "conversion error" in str(error):
            raise first_bad_csv_value(piece, columns, error) from None
        if piece.kind == "csv" and "columns, got" in str(error):
            raise first_short_or_long_row(piece, len(columns), error) from None
        raise InputError(
            [piece.path], f"{piece.path}: cannot read it as {piece.kind}: {error}"
        ) from None


def first_bad_csv_value(
    piece: "Piece", columns: Sequence[str], error: Exception
) -> BadValue | InputError:
    """Where in a CSV piece the first feature value that is not a number is (Arrow's error
    names the column but not the row). The cells are checked with Arrow's own conversion."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    numbers = [f.name for f in FEATURES if f.type in NUMBERS]
    as_text = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in numbers},
        include_columns=numbers,
        strings_can_be_null=False,
    )
    seen = 0
    with RangeFile(piece.path, piece.start, piece.end) as stream:
        options = pcsv.ReadOptions(column_names=list(columns), block_size=1 << 20)
        for batch in pcsv.open_csv(stream, read_options=options, convert_options=as_text):
            for name in numbers:
                cells = batch.column(name)
                try:
                    pc.cast(cells, pa.float64())
                    continue
                except pa.ArrowInvalid:
                    pass
                for i, cell in enumerate(cells.to_pylist()):
                    if cell == "":  # a missing value, which the encoder judges
                        continue
                    try:
                        pc.cast(pa.array([cell]), pa.float64())
                    except pa.ArrowInvalid:
                        return BadValue(name, seen + i, f"has {cell!r}, which is not a number")
            seen += batch.num_rows
    return InputError([piece.path], f"{piece.path}: cannot read it as csv: {error}")


def first_short_or_long_row(piece: "Piece", width: int, error: Exception) -> InputError:
    """Which row of a CSV piece has another number of fields than the header (Arrow's error
    quotes the row but does not number it): its row in the file, from 1."""
    import csv

    with RangeFile(piece.path, piece.start, piece.end) as raw:
        text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="")
        try:
            for index, fields in enumerate(csv.reader(text)):
                if fields and len(fields) != width:
                    row = rows_before(piece) + index + 1
                    return InputError(
                        [piece.path, row],
                        f"{piece.path}: row {row} has {len(fields)} fields, the header {width}",
                    )
        except (csv.Error, UnicodeDecodeError):
            pass  # Arrow's own reason, below
    return InputError([piece.path], f"{piece.path}: cannot read it as csv: {error}")


def feature_matrix(batch: "pa.RecordBatch", first: int) -> np.ndarray:
    """The batch's features as the model's float matrix (core/encoding.py). A value that does
    not fit its feature raises BadValue; `first` is the batch's first row within its piece,
    from 0."""
    names = set(batch.schema.names)
    missing = [name for name in FEATURE_NAMES if name not in names]
    if missing:
        raise InputError(["columns"], f"missing column(s): {', '.join(missing)}")
    matrix = np.empty((batch.num_rows, len(FEATURES)), dtype=np.float64)
    for j, feature in enumerate(FEATURES):
        try:
            matrix[:, j] = encode_array(feature, batch.column(feature.name))
        except EncodingError as bad:
            raise BadValue(feature.name, first + bad.index, bad.problem) from None
    return matrix


class PartWriter:
    """Writes record batches one after another into one file of the format given."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._writer: Any = None
        self._handle: Any = None

    def write(self, batch: "pa.RecordBatch | bytes") -> None:
        """A record batch, or for JSON Lines the lines themselves (see splice_predictions)."""
        if isinstance(batch, bytes):
            if self._handle is None:
                self._handle = self.path.open("wb")
            self._handle.write(batch)
            return
        if self._writer is None:
            if self.kind == "csv":
                import pyarrow.csv as pcsv

                self._writer = pcsv.CSVWriter(self.path, batch.schema)
            else:
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.path, batch.schema)
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._handle is not None:
            self._handle.close()


class BackgroundWriter:
    """A PartWriter on a thread of its own: Arrow formats and writes one batch (without the
    GIL) while the next is read and scored. At most `depth` batches wait, so memory stays
    bounded. An error in the writer is raised by the next `write` or by `close`."""

    def __init__(self, writer: PartWriter, depth: int = 2) -> None:
        self._writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="part-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write(batch)
                except BaseException as error:  # handed to the scoring thread
                    self._error = error
        try:
            self._writer.close()
        except BaseException as error:
            self._error = self._error or error

    def write(self, batch: "pa.RecordBatch") -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self) -> None:
        if not self._closed:
            # Closed once the end is queued: a signal that interrupts the put (a full queue
            # waits) leaves it to the next close, which the caller's cleanup makes.
            self._queue.put(None)
            self._closed = True
        while self._thread.is_alive():  # also after a signal interrupted an earlier join
            self._thread.join()
        if self._error is not None:
            raise self._error


def json_lines(piece: "Piece") -> Iterator[bytes]:
    """The piece's records as written, one per non-blank line (as Arrow's reader counts them)."""
    with RangeFile(piece.path, piece.start, piece.end) as raw:
        for line in io.BufferedReader(raw, buffer_size=1 << 20):
            record = line.strip()
            if record:
                yield record


class LinesAndRecordsDiffer(Exception):
    """A JSON Lines piece whose lines and records do not match one to one."""


def splice_predictions(
    lines: Iterator[bytes],
    labels: Sequence[Any],
    probabilities: np.ndarray | None,
    classes: Sequence[str],
    keep: Sequence[str] | None,
    first: int,
) -> bytes:
    """The next len(labels) records with their predictions added. With `keep` None every field
    stays exactly as written; otherwise only the features and the `keep` fields. `first` is
    the first record's row within its piece, from 0, for errors.

    A record that already has a field scoring adds raises BadValue; lines that run out before
    the records do (a line holding two records) raise LinesAndRecordsDiffer."""
    import orjson

    wanted = None if keep is None else set(FEATURE_NAMES) | set(keep)
    names = [probability_column(name) for name in classes]
    out = []
    for i, label in enumerate(labels):
        record = next(lines, None)
        if record is None:
            raise LinesAndRecordsDiffer()
        if wanted is not None:
            fields = orjson.loads(record)
            record = orjson.dumps({k: v for k, v in fields.items() if k in wanted})
        elif b'"prediction"' in record or b'"probability_' in record:
            taken = [name for name in (PREDICTION, *names) if name in orjson.loads(record)]
            if taken:
                raise BadValue(
                    taken[0], first + i, "is a field that scoring adds; rename it in the input"
                )
        added: dict[str, Any] = {PREDICTION: label}
        if probabilities is not None:
            added.update(zip(names, probabilities[i].tolist(), strict=True))
        # '{"a": 1}' + ',"prediction": ...}': the record without its closing brace, then ours.
        out.append(record[:-1] + b"," + orjson.dumps(added)[1:])
    return b"\n".join(out) + b"\n"


def line_not_one_record(piece: "Piece") -> InputError:
    """The first line of a JSON Lines piece that is not exactly one JSON object (Arrow's
    reader takes two objects on one line as two records), named by its line in the file."""
    import orjson

    with RangeFile(piece.path, piece.start, piece.end) as raw:
        for index, line in enumerate(io.BufferedReader(raw, buffer_size=1 << 20)):
            record = line.strip()
            if not record:
                continue
            try:
                one = isinstance(orjson.loads(record), dict)
            except orjson.JSONDecodeError:
                one = False
            if not one:
                row = rows_before(piece) + index + 1
                return InputError(
                    [piece.path, row],
                    f"{piece.path}: line {row} is not one JSON object; JSON Lines hold one "
                    "record per line",
                )
    return InputError([piece.path], f"{piece.path}: its lines and records do not match")
