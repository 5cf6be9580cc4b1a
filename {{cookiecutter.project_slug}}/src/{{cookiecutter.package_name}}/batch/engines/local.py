"""The local engine: a shard's pieces scored one after another in this process."""

from collections.abc import Callable

from ...core.cpus import available_cpus
from ...core.settings import Settings
from ...core.storage import Location
from ..dataset import Piece
from ..job import BatchJob, Summary, run_job
from ..output import PartResult
from ..parts import Scoring, score_piece
from ..progress import Progress


def score_in_process(
    pieces: list[Piece], target: Callable[[Piece], Location], scoring: Scoring, progress: Progress
) -> list[PartResult]:
    return [score_piece(piece, scoring, target(piece), progress.add) for piece in pieces]


def predict(settings: Settings, job: BatchJob) -> Summary:
    """Score the job's shard of the dataset in this process."""
    import pyarrow as pa

    pa.set_cpu_count(available_cpus())  # Arrow's readers: as many threads as the CPU limit
    return run_job(settings, job, score_in_process)
