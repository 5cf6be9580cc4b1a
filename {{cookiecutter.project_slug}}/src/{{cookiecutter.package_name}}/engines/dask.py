"""The Dask engine: a dataset's pieces scored on the workers of a Dask cluster.

The workers run this same image (`dask worker tcp://SCHEDULER:8786 --nthreads 1`), load the
model from their own MODEL_DIR and write their parts straight into the output folder, which
this process and every worker must see at the same path (a shared volume or a bucket mount).
Each piece runs `score_piece`, the function the local engine runs, so the output is the same
folder of parts with the same `_SUCCESS` marker.
"""

from ..config import Settings
from ..dataset import WHOLE, part_name
from ..features import InputError
from ..model import ArtifactError
from ..predict import (
    BatchJob,
    Summary,
    finish_shard,
    peak_memory_mb,
    prepare,
    progress_for,
    score_piece,
    start_folder,
)
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
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        raise InputError(
            ["--scheduler"],
            f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s: {error}",
        ) from None
    with client:
        threads = max(sum(client.nthreads().values()), 1)
        dataset, pieces, scoring, to_file = prepare(settings, job, spread=threads)
        if to_file:
            raise InputError(
                ["--output"], "the Dask engine writes a folder of parts; give a folder name"
            )
        start_folder(job.target, job.overwrite, 1)
        progress = progress_for(settings, pieces)
        progress.emit("start", inputs=len(dataset.parts), pieces=len(pieces), workers=threads)
        targets = [job.target / part_name(piece.index, piece.kind) for piece in pieces]
        futures = client.map(score_piece, pieces, [scoring] * len(pieces), targets, pure=False)
        sizes = {future.key: piece.size for future, piece in zip(futures, pieces, strict=True)}
        results = []
        try:
            for future in as_completed(futures):
                result = future.result()  # a worker's error is raised here as it was there
                results.append(result)
                progress.add(result.rows, sizes[future.key])
        except (InputError, ArtifactError, OSError):
            raise
        except Exception as error:  # a worker died, a task was lost, ...
            raise ClusterError(
                f"the Dask cluster failed: {type(error).__name__}: {error}"
            ) from None
        results.sort(key=lambda r: r.piece)
    finish_shard(job.target, WHOLE, pieces, results, dataset, scoring)
    progress.done(output=str(job.target), peak_memory_mb=peak_memory_mb())
    return Summary(sum(r.rows for r in results), results)
