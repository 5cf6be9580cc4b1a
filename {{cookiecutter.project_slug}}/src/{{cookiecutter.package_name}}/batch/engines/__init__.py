"""Where a job's pieces are scored: in this process (local.py) or on a Dask cluster (dask.py)."""


class ClusterError(RuntimeError):
    """The cluster failed the job (a worker died, a task was lost), not the data."""
