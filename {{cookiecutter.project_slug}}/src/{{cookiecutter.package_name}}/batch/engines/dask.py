"""The Dask engine: a dataset's pieces scored on the workers of a Dask cluster.

The workers run this same image (`dask worker tcp://SCHEDULER:8786 --nthreads 1`) and load
the model from the job's MODEL_DIR path, which must hold the same model on every worker (the
image's own, or a shared volume). They write their parts straight into the output folder,
which this process and every worker must see at the same path (a shared volume or a bucket
mount). Each piece runs `score_piece`, the function the local engine runs, and the job's flow
is `run_job`'s, so the output is the same folder of parts with the same `_SUCCESS` marker.
"""

from collections.abc import Callable
from typing import Any

from ...core.artifact import ArtifactError
from ...core.schema import InputError
from ...core.settings import Settings
from ...core.storage import Location
from ..dataset import Piece
from ..job import BatchJob, Engine, Summary, run_job
from ..output import PartResult, is_file_target
from ..parts import Scoring, score_piece
from ..progress import Progress
from . import ClusterError

CONNECT_TIMEOUT_S = 10


def predict_on_dask(settings: Settings, job: BatchJob, address: str | None) -> Summary:
    if not address:
        raise InputError(
            ["--scheduler"], "the Dask engine needs --scheduler or DASK_SCHEDULER_ADDRESS"
        )
    if job.shard.count > 1:
        raise InputError(
            ["--engine"], "shards and the Dask engine are two ways to split a job; use one"
        )
    if is_file_target(job.target):
        raise InputError(
            ["--output"], "the Dask engine writes a folder of parts; give a folder name"
        )
    with connect(address) as client:
        threads = max(sum(client.nthreads().values()), 1)
        return run_job(settings, job, engine_on(client), spread=threads, workers=threads)


def connect(address: str) -> Any:
    """A client of the scheduler at `address` that has at least one worker."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(
            ["--scheduler"],
            f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s: {error}",
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        client.close()
        raise InputError(
            ["--scheduler"],
            f"the Dask scheduler at {address} has no worker after {CONNECT_TIMEOUT_S} s: {error}",
        ) from None
    return client


def engine_on(client: Any) -> Engine:
    def score_on_cluster(
        pieces: list[Piece],
        target: Callable[[Piece], Location],
        scoring: Scoring,
        progress: Progress,
    ) -> list[PartResult]:
        from distributed import as_completed

        targets = [target(piece) for piece in pieces]
        futures = client.map(score_piece, pieces, [scoring] * len(pieces), targets, pure=False)
        sizes = {future.key: piece.size for future, piece in zip(futures, pieces, strict=True)}
        results = []
        try:
            for future in as_completed(futures):
                result = future.result()  # a worker's error is raised here as it was there
                results.append(result)
                progress.add(result.rows, sizes[future.key])
        except (InputError, ArtifactError, OSError):
            client.cancel(futures)
            raise
        except Exception as error:  # a worker died, a task was lost, ...
            client.cancel(futures)
            raise ClusterError(
                f"the Dask cluster failed: {type(error).__name__}: {error}"
            ) from None
        except BaseException:  # stopped (SIGTERM): stop the cluster's work too
            client.cancel(futures)
            raise
        return sorted(results, key=lambda r: r.piece)

    return score_on_cluster
