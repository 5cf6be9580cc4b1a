"""Datasets for batch scoring: find the parts, split them into pieces, share pieces out as shards.

A dataset is one file, a folder or a glob of CSV, Parquet or JSON Lines parts in one format and
with the same columns, on the local disk or in an object store (`s3://bucket/prefix/`: the
objects under the prefix are its files, core/storage.py). A piece is the unit of work: a whole
file, a run of a Parquet file's row groups, or a byte range of a CSV or JSON Lines file that
starts and ends at line starts.

The plan (the list of pieces) depends only on the input and the shard count, so every shard,
every retry and every Dask worker computes the same one. Piece k is written as part k; shard i
of N scores pieces i, i+N, i+2N, ... Concatenating the parts in name order gives the rows of the
input in order.
"""

import csv
import glob
import hashlib
import io
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..core.formats import FORMATS, file_format
from ..core.schema import FEATURE_NAMES, InputError
from ..core.settings import Settings
from ..core.storage import (
    Listed,
    Location,
    ObjectPath,
    arrow_input,
    glob_matches,
    list_objects,
    object_info,
    open_input,
)

SPLIT_MB = 64  # a CSV or JSON Lines file larger than this is split into pieces of about this size
HIDDEN_PREFIXES = (".", "_")  # _SUCCESS, .crc files and other markers are not data


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index + 1} of {self.count}"


WHOLE = Shard(0, 1)


@dataclass(frozen=True)
class Piece:
    index: int  # the part it is written to
    path: str
    kind: str  # csv, parquet or jsonl
    start: int = 0  # CSV and JSON Lines: the byte range [start, end) of whole lines
    end: int = 0
    row_groups: tuple[int, ...] = ()  # Parquet: the row groups, empty for the whole file
    rows: int | None = None  # known in advance for Parquet

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Dataset:
    parts: tuple[Location, ...]
    sizes: tuple[int, ...]  # each part's, when it was found
    mtimes: tuple[int, ...]  # each part's last change (ns), when it was found
    kind: str
    columns: tuple[str, ...]
    is_single_file: bool


def resolve_shard(index: int | None, count: int | None, settings: Settings) -> Shard:
    """The shard to score: from the flags, else from a Kubernetes Indexed Job
    (JOB_COMPLETION_INDEX with SHARD_COUNT), else from an AWS Batch array job
    (AWS_BATCH_JOB_ARRAY_INDEX with AWS_BATCH_JOB_ARRAY_SIZE or SHARD_COUNT), else the whole.
    An index from the environment needs a count: index 0 alone would score everything."""
    from_environment = index is None and (
        settings.job_completion_index is not None or settings.aws_batch_job_array_index is not None
    )
    if index is None:
        index = settings.job_completion_index
        if index is None:
            index = settings.aws_batch_job_array_index
    if count is None:
        count = settings.shard_count
        if count is None and settings.job_completion_index is None:
            count = settings.aws_batch_job_array_size
    if count is None:
        if from_environment or index not in (None, 0):
            raise InputError(
                ["--shard-count"],
                f"shard index {index} is set but not the shard count: give --shard-count or "
                "SHARD_COUNT (a Kubernetes Indexed Job's `completions`)",
            )
        count = 1
    if count < 1:
        raise InputError(["--shard-count"], f"the shard count must be 1 or more, not {count}")
    if index is None:
        if count > 1:
            raise InputError(
                ["--shard-index"],
                f"{count} shards but no shard index: give --shard-index, or run as a "
                "Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or an AWS Batch array job",
            )
        index = 0
    if not 0 <= index < count:
        raise InputError(
            ["--shard-index"],
            f"shard index {index} is out of range for {count} shards (0-{count - 1})",
        )
    return Shard(index, count)


def is_glob(source: Location) -> bool:
    return any(char in str(source) for char in "*?[")


def find_dataset(source: Location) -> Dataset:
    """The parts of the dataset at `source` (a file, a folder or a glob, local or in an object
    store), checked to share one format and one set of columns, which must hold every
    feature."""
    text = str(source)
    if isinstance(source, ObjectPath):
        try:
            found, is_file = _find_objects(source)
        except OSError as error:  # refused, unreachable: the store's reason, on one line
            reason = " ".join(str(error).split())
            raise InputError([text], f"{source}: cannot list or read it: {reason}") from None
    else:
        found, is_file = _find(source)
    if not found:
        raise InputError([text], f"{source}: no CSV, Parquet or JSON Lines files in it")
    kinds: dict[str, Location] = {}
    for entry in found:
        kinds.setdefault(file_format(entry.path), entry.path)
    if len(kinds) > 1:
        examples = ", ".join(f"{path} ({kind})" for kind, path in kinds.items())
        raise InputError([text], f"{source} mixes formats: {examples}; a dataset has one format")
    kind = next(iter(kinds))
    first = found[0].path
    columns = columns_of(first, kind)
    for entry in found[1:]:
        other = columns_of(entry.path, kind)
        same = set(other) == set(columns) if kind == "jsonl" else other == columns
        if not same:
            raise InputError(
                [str(entry.path)],
                f"{entry.path}: its columns ({', '.join(other)}) differ from those of {first} "
                f"({', '.join(columns)})",
            )
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise InputError(["columns"], f"{first}: missing column(s): {', '.join(missing)}")
    return Dataset(
        tuple(entry.path for entry in found),
        tuple(entry.size for entry in found),
        tuple(entry.mtime_ns for entry in found),
        kind,
        tuple(columns),
        is_single_file=is_file,
    )


def _find(source: Path) -> tuple[list[Listed], bool]:
    """The local files of a dataset, and whether `source` is one file."""
    if is_glob(source):
        found = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if Path(p).is_file())
        found = [p for p in found if not p.name.startswith(HIDDEN_PREFIXES)]
    elif source.is_dir():
        found = sorted(
            p for p in source.rglob("*") if p.is_file() and not hidden(p.relative_to(source).parts)
        )
    elif source.is_file():
        found = [source]
    else:
        raise InputError([str(source)], f"{source}: no such file or folder")
    return [_stat(path) for path in found], not is_glob(source) and source.is_file()


def _stat(path: Path) -> Listed:
    status = path.stat()
    return Listed(path, status.st_size, status.st_mtime_ns)


def hidden(names: Sequence[str]) -> bool:
    """Whether a file, by its names below the dataset's folder, is no data (a marker, a
    checksum, a writer's temporary file, or anything in such a folder)."""
    return any(name.startswith(HIDDEN_PREFIXES) for name in names)


def _find_objects(source: ObjectPath) -> tuple[list[Listed], bool]:
    """The objects of a dataset: the object `source`, else those under it as a folder, or
    those a glob matches; and whether `source` is one object. Hidden names as on disk."""
    if is_glob(source):
        wild = min(i for i, char in enumerate(source.key) if char in "*?[")
        folder = ObjectPath(source.bucket, source.key[:wild].rpartition("/")[0])
        found = [
            entry
            for entry in list_objects(folder)
            if isinstance(entry.path, ObjectPath)
            and glob_matches(source.key, entry.path.key)
            and not entry.path.name.startswith(HIDDEN_PREFIXES)
        ]
        return found, False
    if (single := object_info(source)) is not None:
        return [single], True
    listed = list_objects(source)
    if not listed:
        raise InputError([str(source)], f"{source}: no such object, and no objects under it")
    inside = len(str(source)) + 1
    found = [entry for entry in listed if not hidden(str(entry.path)[inside:].split("/"))]
    return found, False


def columns_of(path: Location, kind: str) -> list[str]:
    """The column names of one part, read from its header, schema or first record; each
    name once."""
    columns = _names_in(path, kind)
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise InputError(
                [str(path), name],
                f"{path}: column {name!r} appears {columns.count(name)} times in its header; "
                "give each column its own name",
            )
        seen.add(name)
    return columns


def _names_in(path: Location, kind: str) -> list[str]:
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            with arrow_input(str(path)) as source:
                return [str(name) for name in pq.read_schema(source).names]
        with open_input(str(path)) as handle:
            first = handle.readline()
        if not first.strip():
            raise InputError([str(path)], f"{path}: the file is empty")
        if kind == "csv":  # utf-8-sig: a header written by Excel starts with a byte-order mark
            return next(csv.reader(io.StringIO(first.decode("utf-8-sig"))))
        record = json.loads(first)
        if not isinstance(record, dict):
            raise InputError([str(path)], f"{path}: line 1 is not a JSON object")
        return [str(key) for key in record]
    except (ValueError, OSError, csv.Error) as error:
        if isinstance(error, InputError):
            raise
        raise InputError([str(path)], f"{path}: cannot read it as {kind}: {error}") from None


def plan(dataset: Dataset, shard_count: int, split_mb: float = SPLIT_MB) -> list[Piece]:
    """Every piece of the dataset, numbered in input order.

    A file is split into pieces of about `split_mb` (0: never split), and into more when the
    dataset is small next to the shard count, so a single large file spreads across shards.
    """
    total = max(sum(dataset.sizes), 1)
    pieces: list[Piece] = []
    for path, size in zip(dataset.parts, dataset.sizes, strict=True):
        wanted = 1
        if split_mb > 0:
            wanted = max(
                math.ceil(size / (split_mb * 1024 * 1024)), math.ceil(shard_count * size / total)
            )
        if dataset.kind == "parquet":
            pieces.extend(_parquet_pieces(path, wanted, len(pieces)))
        else:
            pieces.extend(_line_pieces(path, dataset.kind, size, wanted, len(pieces)))
    return pieces


def _parquet_pieces(path: Location, wanted: int, first_index: int) -> list[Piece]:
    import pyarrow.parquet as pq

    with arrow_input(str(path)) as source:
        metadata = pq.ParquetFile(source).metadata
    groups = metadata.num_row_groups
    count = max(1, min(wanted, groups))
    pieces = []
    for k in range(count):
        chosen = tuple(range(k * groups // count, (k + 1) * groups // count))
        rows = sum(metadata.row_group(g).num_rows for g in chosen)
        pieces.append(Piece(first_index + k, str(path), "parquet", row_groups=chosen, rows=rows))
    return pieces


def _line_pieces(
    path: Location, kind: str, size: int, wanted: int, first_index: int
) -> list[Piece]:
    with open_input(str(path)) as handle:
        data_start = len(handle.readline()) if kind == "csv" else 0
        cuts = [data_start]
        for k in range(1, wanted):
            cut = _line_start_at_or_after(handle, data_start + k * (size - data_start) // wanted)
            if cuts[-1] < cut < size:
                cuts.append(cut)
    cuts.append(size)
    return [
        Piece(first_index + k, str(path), kind, start=start, end=end)
        for k, (start, end) in enumerate(itertools.pairwise(cuts))
    ]


def _line_start_at_or_after(handle: BinaryIO, offset: int) -> int:
    handle.seek(offset - 1)
    if handle.read(1) == b"\n":
        return offset
    handle.readline()
    return handle.tell()


def shard_pieces(pieces: list[Piece], shard: Shard) -> list[Piece]:
    return pieces[shard.index :: shard.count]


def plan_identity(
    dataset: Dataset, shard_count: int, model_version: str, options: object
) -> dict[str, object]:
    """What every shard of one job shares, field by field, so that a disagreement can say
    which one differs: the shard count, the input (its files, their sizes and times), the
    model version and the options (the split, the columns kept, the input's columns). The
    pieces follow from these (plan)."""
    files = [
        [str(path), size, mtime]
        for path, size, mtime in zip(dataset.parts, dataset.sizes, dataset.mtimes, strict=True)
    ]
    return {
        "shards": shard_count,
        "input": _digest(files),
        "model_version": model_version,
        "options": _digest(options),
    }


def plan_fingerprint(identity: dict[str, object]) -> str:
    """A short name of one plan: the default run of a job that sets no BATCH_RUN_ID."""
    return _digest(identity)[:16]


def _digest(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def part_name(piece_index: int, kind: str) -> str:
    suffix = next(ext for ext, name in FORMATS.items() if name == kind)
    return f"part-{piece_index:05d}{suffix}"


def rows_before(piece: Piece) -> int:
    """How many data rows of its file come before the piece (only needed for error messages)."""
    if piece.kind == "parquet":
        import pyarrow.parquet as pq

        with arrow_input(piece.path) as source:
            metadata = pq.ParquetFile(source).metadata
        first = piece.row_groups[0] if piece.row_groups else 0
        return sum(metadata.row_group(g).num_rows for g in range(first))
    with open_input(piece.path) as handle:
        header = len(handle.readline()) if piece.kind == "csv" else 0
        handle.seek(header)
        return handle.read(max(piece.start - header, 0)).count(b"\n")
