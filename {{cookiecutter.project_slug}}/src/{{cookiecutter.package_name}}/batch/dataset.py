"""Datasets for batch scoring: find the parts, split them into pieces, share pieces out as shards.

A dataset is one file, a folder or a glob of CSV, Parquet or JSON Lines parts in one format and
with the same columns. A piece is the unit of work: a whole file, a run of a Parquet file's row
groups, or a byte range of a CSV or JSON Lines file that starts and ends at line starts.

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
from dataclasses import dataclass
from pathlib import Path

from ..core.formats import FORMATS, file_format
from ..core.schema import FEATURE_NAMES, InputError
from ..core.settings import Settings

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
    parts: tuple[Path, ...]
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


def find_dataset(source: Path) -> Dataset:
    """The parts of the dataset at `source` (a file, a folder or a glob), checked to share one
    format and one set of columns, which must hold every feature."""
    text = str(source)
    is_glob = any(char in text for char in "*?[")
    if is_glob:
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        found = [p for p in found if not p.name.startswith(HIDDEN_PREFIXES)]
    elif source.is_dir():
        found = sorted(
            p
            for p in source.rglob("*")
            if p.is_file()
            and not any(part.startswith(HIDDEN_PREFIXES) for part in p.relative_to(source).parts)
        )
    elif source.is_file():
        found = [source]
    else:
        raise InputError([text], f"{source}: no such file or folder")
    if not found:
        raise InputError([text], f"{source}: no CSV, Parquet or JSON Lines files in it")
    kinds: dict[str, Path] = {}
    for path in found:
        kinds.setdefault(file_format(path), path)
    if len(kinds) > 1:
        examples = ", ".join(f"{path} ({kind})" for kind, path in kinds.items())
        raise InputError([text], f"{source} mixes formats: {examples}; a dataset has one format")
    kind = next(iter(kinds))
    columns = columns_of(found[0], kind)
    for path in found[1:]:
        other = columns_of(path, kind)
        same = set(other) == set(columns) if kind == "jsonl" else other == columns
        if not same:
            raise InputError(
                [str(path)],
                f"{path}: its columns ({', '.join(other)}) differ from those of {found[0]} "
                f"({', '.join(columns)})",
            )
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise InputError(["columns"], f"{found[0]}: missing column(s): {', '.join(missing)}")
    return Dataset(
        tuple(found),
        kind,
        tuple(columns),
        is_single_file=not is_glob and len(found) == 1 and source.is_file(),
    )


def columns_of(path: Path, kind: str) -> list[str]:
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


def _names_in(path: Path, kind: str) -> list[str]:
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return [str(name) for name in pq.read_schema(path).names]
        with path.open("rb") as handle:
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
    sizes = [path.stat().st_size for path in dataset.parts]
    total = max(sum(sizes), 1)
    pieces: list[Piece] = []
    for path, size in zip(dataset.parts, sizes, strict=True):
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


def _parquet_pieces(path: Path, wanted: int, first_index: int) -> list[Piece]:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    groups = metadata.num_row_groups
    count = max(1, min(wanted, groups))
    pieces = []
    for k in range(count):
        chosen = tuple(range(k * groups // count, (k + 1) * groups // count))
        rows = sum(metadata.row_group(g).num_rows for g in chosen)
        pieces.append(Piece(first_index + k, str(path), "parquet", row_groups=chosen, rows=rows))
    return pieces


def _line_pieces(path: Path, kind: str, size: int, wanted: int, first_index: int) -> list[Piece]:
    with path.open("rb") as handle:
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


def _line_start_at_or_after(handle: io.BufferedReader, offset: int) -> int:
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
    files = []
    for path in dataset.parts:
        status = path.stat()
        files.append([str(path), status.st_size, status.st_mtime_ns])
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

        metadata = pq.ParquetFile(piece.path).metadata
        first = piece.row_groups[0] if piece.row_groups else 0
        return sum(metadata.row_group(g).num_rows for g in range(first))
    with open(piece.path, "rb") as handle:
        header = len(handle.readline()) if piece.kind == "csv" else 0
        handle.seek(header)
        return handle.read(max(piece.start - header, 0)).count(b"\n")
