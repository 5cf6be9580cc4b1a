"""A batch job's flow: plan the dataset, claim the output, score a shard, record it.

A job finds its dataset, plans its pieces (dataset.py), claims the output folder, has an
engine score its shard's pieces (parts.py; engines/ for where they run: `predict` in
engines/local.py runs a job in this process) and records them in the output folder
(output.py), whose `_SUCCESS` marker says the whole job is there.
"""

import fnmatch
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..core.artifact import load_artifact
from ..core.formats import FORMATS, file_format
from ..core.model_source import model_folder, pinned
from ..core.schema import FEATURE_NAMES, InputError
from ..core.settings import Settings
from ..core.storage import Location, ObjectPath
from .dataset import (
    SPLIT_MB,
    WHOLE,
    Dataset,
    Piece,
    Shard,
    find_dataset,
    is_glob,
    part_name,
    plan,
    plan_fingerprint,
    plan_identity,
    shard_pieces,
)
from .output import (
    PartResult,
    completed_by,
    finish_shard,
    is_file_target,
    output_columns,
    start_file,
    start_folder,
)
from .parts import Scoring, model_version, remember
from .progress import Progress


@dataclass(frozen=True)
class BatchJob:
    source: Location  # a file, a folder or a glob, local or in an object store
    target: Location  # a file for one input file, else a folder
    shard: Shard = WHOLE
    chunk_rows: int = 50_000
    keep_columns: tuple[str, ...] | None = None  # extra columns to pass through; None: all
    split_mb: float = SPLIT_MB
    overwrite: bool = False


@dataclass
class Summary:
    rows: int
    parts: list[PartResult] = field(default_factory=list)


# An engine scores pieces and returns their results in piece order: (pieces, the target of
# a piece, what to score with, progress) -> results.
Engine = Callable[[list[Piece], Callable[[Piece], Location], Scoring, Progress], list[PartResult]]


@dataclass(frozen=True)
class Plan:
    dataset: Dataset
    pieces: list[Piece]
    scoring: Scoring
    to_file: bool  # one input file to one output file; else a folder of parts
    identity: dict[str, object]  # the same in every shard of the job: plan_identity

    @property
    def fingerprint(self) -> str:
        return plan_fingerprint(self.identity)


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
    check_apart(job.source, dataset, job.target)
    features = set(FEATURE_NAMES)
    extras = [name for name in dataset.columns if name not in features]
    if job.keep_columns is None:
        keep = tuple(extras)
    else:
        known = set(extras)
        unknown = [name for name in job.keep_columns if name not in known]
        if unknown:
            raise InputError(
                ["--keep-columns"],
                f"no such extra column: {', '.join(unknown)} (the input has: "
                f"{', '.join(extras) or 'none'})",
            )
        keep = tuple(job.keep_columns)
    model_uri = pinned(settings.model_uri)  # an alias read once: every piece, one version
    folder = model_folder(settings.model_dir, model_uri, settings.model_cache_dir)
    artifact = load_artifact(folder, settings.model_runtime)
    check_no_clash(dataset, keep, output_columns(artifact.metadata.get("classes", [])))
    scoring = Scoring(
        columns=dataset.columns,
        keep=keep,
        chunk_rows=job.chunk_rows,
        model_dir=str(settings.model_dir),
        model_version=model_version(artifact),
        runtime=artifact.runtime.name,
        model_uri=model_uri,
        cache_dir=str(settings.model_cache_dir),
    )
    remember(scoring.source, artifact)  # the local engine scores with it
    split_mb = 0 if to_file else job.split_mb
    pieces = plan(dataset, spread or job.shard.count, split_mb)
    options = [split_mb, spread, scoring.keep, dataset.columns]
    identity = plan_identity(dataset, job.shard.count, scoring.model_version, options)
    return Plan(dataset, pieces, scoring, to_file, identity)


def check_apart(source: Location, dataset: Dataset, target: Location) -> None:
    """Refuse, before anything is written, an output that is one of the input's files,
    holds one, or lies inside the input folder (where the next run would read it)."""
    problem = None
    for path in dataset.parts:
        if within(target, path):
            problem = f"is the input file {path}: scoring would overwrite its own input"
        elif within(path, target):
            problem = f"holds the input file {path}: scoring would replace its own input"
        if problem:
            break
    is_folder = isinstance(source, ObjectPath) or source.is_dir()
    if not problem and not is_glob(source) and is_folder and within(target, source):
        problem = f"lies inside the input folder {source}: the next run would read it as input"
    pattern = str(source)
    if not problem and is_glob(source) and is_glob_match(target, pattern):
        problem = f"matches the input pattern {pattern}: the next run would read it as input"
    if problem:
        raise InputError(["--output"], f"--output {target} {problem}; write the output elsewhere")


def within(path: Location, folder: Location) -> bool:
    """Whether `path` is `folder` or lies inside it (local paths resolved, links followed)."""
    if isinstance(path, ObjectPath) or isinstance(folder, ObjectPath):
        return (
            isinstance(path, ObjectPath)
            and isinstance(folder, ObjectPath)
            and folder.contains(path)
        )
    inside, outside = path.resolve(), folder.resolve()
    return inside == outside or outside in inside.parents


def is_glob_match(target: Location, pattern: str) -> bool:
    """Whether the output, or a part the job may write in it, matches the input's glob
    (fnmatch's `*` spans folders, as a recursive `**` does: it errs on the side of refusing)."""
    names = [str(target), *(str(target / f"part-00000{suffix}") for suffix in FORMATS)]
    return any(fnmatch.fnmatch(name, pattern) for name in names)


def check_no_clash(dataset: Dataset, keep: Sequence[str], added: Sequence[str]) -> None:
    """Refuse an input column that the output would carry twice: one of the columns scoring
    adds (prediction, probability_<class>) among the features or the kept columns."""
    carried = set(FEATURE_NAMES) | set(keep)
    clash = [name for name in added if name in carried]
    if clash:
        raise InputError(
            [clash[0]],
            f"{dataset.parts[0]}: its column {clash[0]!r} has the name of a column that "
            "scoring adds; rename it, or leave it out with --keep-columns",
        )


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
        start_file(job.target)
        targets: Callable[[Piece], Location] = lambda _piece: job.target  # noqa: E731
    else:
        if completed_by(job.target, settings.batch_run_id):  # only a named run is skipped
            progress.emit("done", rows=0, output=str(job.target), note="the run is complete")
            return Summary(0, [])
        start_folder(job.target, job.overwrite, job.shard, run, plan.identity)
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
        finish_shard(
            job.target,
            job.shard,
            run,
            plan.identity,
            plan.dataset,
            plan.scoring.model_version,
            results,
        )
    progress.done(output=str(job.target), peak_memory_mb=peak_memory_mb())
    return Summary(rows, results)


def peak_memory_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux
