"""Batch scoring: a dataset in, the same rows with their predictions out, in bounded memory.

`score_piece` scores one piece of the input into one part of the output. The local engine runs
a shard's pieces one after another in this process; the Dask engine (engines/dask.py) runs the
same function on a cluster's workers. Either way:

- The output of one input file is one file. Otherwise (a folder, a glob, shards or Dask) it is
  a folder of parts `part-00000.csv`, ... in input order.
- Every part is written under a temporary name and renamed when complete.
- `_SUCCESS` appears only when every part of the job is there. It holds the rows, the inputs,
  the model version and each part's rows and SHA-256.
- A retried shard rewrites only its own parts.
"""

import contextlib
import json
import os
import resource
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .artifact import Artifact, load_artifact, sha256_file
from .config import Settings
from .cpus import available_cpus
from .data import (
    FORMATS,
    BackgroundWriter,
    BadValue,
    PartWriter,
    feature_matrix,
    file_format,
    json_lines,
    read_piece,
    splice_predictions,
)
from .dataset import (
    SPLIT_MB,
    WHOLE,
    Dataset,
    Piece,
    Shard,
    find_dataset,
    part_name,
    plan,
    plan_fingerprint,
    shard_pieces,
)
from .features import FEATURE_NAMES, InputError
from .progress import Progress
from .scoring import predict_matrix

if TYPE_CHECKING:
    import pyarrow as pa

SUCCESS_FILE = "_SUCCESS"
SHARDS_DIR = "_shards"


@dataclass(frozen=True)
class BatchJob:
    source: Path  # a file, a folder or a glob
    target: Path  # a file for one input file, else a folder
    shard: Shard = WHOLE
    chunk_rows: int = 50_000
    keep_columns: tuple[str, ...] | None = None  # extra columns to pass through; None: all
    split_mb: float = SPLIT_MB
    overwrite: bool = False


@dataclass(frozen=True)
class Scoring:
    """What every piece of one job is scored with; small, so it travels to Dask workers."""

    columns: tuple[str, ...]
    keep: tuple[str, ...]
    chunk_rows: int
    model_dir: str
    model_version: str
    runtime: Literal["onnx", "native"]  # chosen once, from MODEL_RUNTIME and the artifact


@dataclass(frozen=True)
class PartResult:
    piece: int
    name: str | None  # None: the piece held no rows
    rows: int
    sha256: str | None


@dataclass
class Summary:
    rows: int
    parts: list[PartResult] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# One piece
# ---------------------------------------------------------------------------------------

_ARTIFACTS: dict[str, Artifact] = {}


def artifact_for(scoring: Scoring) -> Artifact:
    """The job's model, loaded once per process: a Dask worker keeps it between pieces, and
    loads the folder again when a job asks for another version (after a retraining)."""
    artifact = _ARTIFACTS.get(scoring.model_dir)
    if artifact is None or model_version(artifact) != scoring.model_version:
        artifact = load_artifact(Path(scoring.model_dir), scoring.runtime)
        _ARTIFACTS[scoring.model_dir] = artifact
    if model_version(artifact) != scoring.model_version:
        raise InputError(
            ["model"],
            f"the model in {scoring.model_dir} is version {model_version(artifact)}, not the "
            f"job's {scoring.model_version}: every process of a job must load the same model",
        )
    return artifact


def model_version(artifact: Artifact) -> str:
    return str(artifact.metadata.get("model_version", ""))


def temporary_name(target: Path) -> Path:
    """A name of its own beside `target` (hidden, `.partial`), so that two attempts at one
    part, a retried pod beside the one it replaces, never share a file."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(handle)
    return Path(name)


def score_piece(
    piece: Piece,
    scoring: Scoring,
    target: Path,
    on_rows: Callable[[int, int], None] | None = None,
) -> PartResult:
    """Score `piece` into the file `target`, written under a temporary name and then renamed."""
    import pyarrow as pa

    artifact = artifact_for(scoring)
    classes = [str(c) for c in artifact.metadata["classes"]]
    partial = temporary_name(target)
    writer = BackgroundWriter(PartWriter(partial, piece.kind))
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
                    splice_predictions(lines, labels.tolist(), probabilities, classes, keep)
                )
            else:
                arrays = [batch.column(i) for i in range(batch.num_columns)]
                names = list(batch.schema.names)
                arrays.append(label_array(labels))
                names.append("prediction")
                if probabilities is not None:
                    for k, name in enumerate(classes):
                        arrays.append(pa.array(probabilities[:, k]))
                        names.append(f"probability_{name}")
                writer.write(pa.RecordBatch.from_arrays(arrays, names=names))
            rows += batch.num_rows
            if on_rows is not None:
                on_rows(batch.num_rows, 0)
        writer.close()
        if rows == 0:
            partial.unlink(missing_ok=True)
            return PartResult(piece.index, None, 0, None)
        os.replace(partial, target)
    except BadValue as bad:
        close_quietly(writer)
        partial.unlink(missing_ok=True)
        row = rows_before(piece) + bad.index + 1
        raise InputError(
            [bad.name, row], f"{piece.path}: column {bad.name!r}, row {row} {bad.problem}"
        ) from None
    except InputError as error:
        close_quietly(writer)
        partial.unlink(missing_ok=True)
        if error.message.startswith(piece.path):
            raise
        raise InputError(error.location, f"{piece.path}: {error.message}") from None
    except BaseException:
        close_quietly(writer)
        partial.unlink(missing_ok=True)
        raise
    return PartResult(piece.index, target.name, rows, sha256_file(target))


def label_array(labels: np.ndarray) -> "pa.Array":
    """The labels as an Arrow string column (numeric classes become their text)."""
    import pyarrow as pa

    array = pa.array(labels)
    return array if array.type == pa.string() else array.cast(pa.string())


def close_quietly(writer: BackgroundWriter) -> None:
    """Close after a failure: the failure is what the caller reports."""
    with contextlib.suppress(Exception):
        writer.close()


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


# ---------------------------------------------------------------------------------------
# A job
# ---------------------------------------------------------------------------------------

# An engine scores pieces and returns their results in piece order: (pieces, the target of
# a piece, what to score with, progress) -> results.
Engine = Callable[[list[Piece], Callable[[Piece], Path], Scoring, Progress], list[PartResult]]


@dataclass(frozen=True)
class Plan:
    dataset: Dataset
    pieces: list[Piece]
    scoring: Scoring
    to_file: bool  # one input file to one output file; else a folder of parts
    fingerprint: str  # the same in every shard of the job: input, split, model, columns


def is_file_target(path: Path) -> bool:
    return path.suffix.lower() in FORMATS


def prepare(settings: Settings, job: BatchJob, spread: int | None = None) -> Plan:
    """Find the dataset, plan its pieces (at least `spread` when the data allows; default: the
    shard count) and decide the output layout: a file, or a folder of parts."""
    dataset = find_dataset(job.source)
    to_file = is_file_target(job.target)
    if to_file:
        if not dataset.is_single_file:
            raise InputError(
                ["--output"],
                f"the input is a dataset of {len(dataset.parts)} part(s); give a folder "
                "for --output, not a file name",
            )
        if job.shard.count > 1:
            raise InputError(
                ["--output"], "with shards the output is a folder of parts; give a folder name"
            )
        if file_format(job.target) != dataset.kind:
            raise InputError(
                ["--output"], f"use the same format as the input ({dataset.kind}) for the output"
            )
    extras = [name for name in dataset.columns if name not in FEATURE_NAMES]
    if job.keep_columns is None:
        keep = tuple(extras)
    else:
        unknown = [name for name in job.keep_columns if name not in extras]
        if unknown:
            raise InputError(
                ["--keep-columns"],
                f"no such extra column: {', '.join(unknown)} (the input has: "
                f"{', '.join(extras) or 'none'})",
            )
        keep = tuple(job.keep_columns)
    artifact = load_artifact(settings.model_dir, settings.model_runtime)
    _ARTIFACTS[str(settings.model_dir)] = artifact  # the local engine scores with it
    scoring = Scoring(
        columns=dataset.columns,
        keep=keep,
        chunk_rows=job.chunk_rows,
        model_dir=str(settings.model_dir),
        model_version=model_version(artifact),
        runtime=artifact.runtime.name,
    )
    pieces = plan(dataset, spread or job.shard.count, 0 if to_file else job.split_mb)
    fingerprint = plan_fingerprint(
        pieces, job.shard.count, scoring.model_version, scoring.keep, dataset.columns
    )
    return Plan(dataset, pieces, scoring, to_file, fingerprint)


def progress_for(settings: Settings, pieces: Sequence[Piece]) -> Progress:
    known = all(piece.rows is not None for piece in pieces)
    return Progress(
        "predict",
        interval=settings.progress_interval,
        log_format=settings.log_format,
        total_rows=sum(piece.rows or 0 for piece in pieces) if known else None,
        total_bytes=None if known else sum(piece.size for piece in pieces),
    )


def run_job(
    settings: Settings,
    job: BatchJob,
    engine: Engine,
    spread: int | None = None,
    **about: object,
) -> Summary:
    """The flow of every job, whatever the engine: plan, claim the output, score this shard's
    pieces, record the shard, and write `_SUCCESS` once every shard of the run is done.
    `about` goes into the `start` line (the engine's workers, say)."""
    plan = prepare(settings, job, spread)
    mine = shard_pieces(plan.pieces, job.shard)
    progress = progress_for(settings, mine)
    run = settings.batch_run_id or plan.fingerprint
    if plan.to_file:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        targets: Callable[[Piece], Path] = lambda _piece: job.target  # noqa: E731
    else:
        if completed_by(job.target, settings.batch_run_id):
            progress.emit("done", rows=0, output=str(job.target), note="the run is complete")
            return Summary(0, [])
        start_folder(job.target, job.overwrite, job.shard, run)
        targets = lambda piece: job.target / part_name(piece.index, piece.kind)  # noqa: E731
    progress.emit(
        "start",
        inputs=len(plan.dataset.parts),
        pieces=len(mine),
        shard=str(job.shard),
        runtime=plan.scoring.runtime,
        **about,
    )
    results = engine(mine, targets, plan.scoring, progress)
    rows = sum(r.rows for r in results)
    if plan.to_file and rows == 0:
        raise InputError([str(job.source)], f"{job.source}: the file has no rows to score")
    if not plan.to_file:
        finish_shard(job.target, job.shard, run, plan, results)
    progress.done(output=str(job.target), peak_memory_mb=peak_memory_mb())
    return Summary(rows, results)


def local_engine(
    pieces: list[Piece], target: Callable[[Piece], Path], scoring: Scoring, progress: Progress
) -> list[PartResult]:
    return [score_piece(piece, scoring, target(piece), progress.add) for piece in pieces]


def predict(settings: Settings, job: BatchJob) -> Summary:
    """Score the job's shard of the dataset in this process."""
    import pyarrow as pa

    pa.set_cpu_count(available_cpus())  # Arrow's readers: as many threads as the CPU limit
    return run_job(settings, job, local_engine)


def peak_memory_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux


def completed_by(target: Path, run_id: str | None) -> bool:
    """Whether `target` holds the complete result of this very run (a shard retried after its
    run completed has nothing left to do)."""
    success = target / SUCCESS_FILE
    if run_id is None or not success.is_file():
        return False
    return bool(json.loads(success.read_text()).get("run") == run_id)


def marker(target: Path, run: str, shard: Shard) -> Path:
    return target / SHARDS_DIR / run / f"{shard.index:05d}-of-{shard.count:05d}.json"


def start_folder(target: Path, overwrite: bool, shard: Shard, run: str) -> None:
    """Make the output folder; refuse one that holds a complete result unless overwriting.

    Overwriting with a single shard empties the folder. With several shards each removes the
    `_SUCCESS` marker only; parts no longer in the plan are removed when the run completes.
    """
    if (target / SUCCESS_FILE).exists():
        if not overwrite:
            raise InputError(
                ["--output"],
                f"{target} already holds a complete result ({SUCCESS_FILE} is there); "
                "use --overwrite to replace it",
            )
        (target / SUCCESS_FILE).unlink(missing_ok=True)
        if shard.count == 1:  # empty it, but keep it: it may be a volume's mount point
            for child in target.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    if target.exists() and not target.is_dir():
        raise InputError(["--output"], f"{target} exists and is not a folder")
    marker(target, run, shard).parent.mkdir(parents=True, exist_ok=True)
    marker(target, run, shard).unlink(missing_ok=True)  # this shard counts once it is done


def write_atomically(path: Path, text: str) -> None:
    partial = temporary_name(path)
    partial.write_text(text)
    os.replace(partial, path)


def finish_shard(
    target: Path, shard: Shard, run: str, plan: Plan, results: list[PartResult]
) -> None:
    """Record the shard as done; the shard that finds every shard of the run done checks that
    they all scored the same plan and writes `_SUCCESS`."""
    record = {
        "plan": plan.fingerprint,
        "shard": asdict(shard),
        "parts": [asdict(r) for r in results],
    }
    write_atomically(marker(target, run, shard), json.dumps(record, indent=1))
    found = [marker(target, run, Shard(i, shard.count)) for i in range(shard.count)]
    if not all(path.exists() for path in found):
        return
    done = [json.loads(path.read_text()) for path in found]
    if any(entry["plan"] != plan.fingerprint for entry in done):
        raise InputError(
            [str(target)],
            f"the shards of run {run} in {target} scored different plans: the input, the "
            "model or the options changed while the job ran. Run the job again.",
        )
    parts = sorted((p for entry in done for p in entry["parts"]), key=lambda p: p["piece"])
    kept = {p["name"] for p in parts if p["name"]}
    for stale in [*target.glob("part-*"), *target.glob(".part-*.partial")]:
        if stale.name not in kept:  # from an earlier plan, or a killed process
            stale.unlink(missing_ok=True)
    for other in (target / SHARDS_DIR).iterdir():
        if other.name != run:
            shutil.rmtree(other, ignore_errors=True)
    success = {
        "rows": sum(p["rows"] for p in parts),
        "inputs": [str(path) for path in plan.dataset.parts],
        "format": plan.dataset.kind,
        "model_version": plan.scoring.model_version,
        "shards": shard.count,
        "run": run,
        "plan": plan.fingerprint,
        "parts": [
            {"name": p["name"], "rows": p["rows"], "sha256": p["sha256"]}
            for p in parts
            if p["name"]
        ],
    }
    if success["rows"] == 0:
        raise InputError([str(plan.dataset.parts[0])], "the dataset has no rows to score")
    write_atomically(target / SUCCESS_FILE, json.dumps(success, indent=1) + "\n")
