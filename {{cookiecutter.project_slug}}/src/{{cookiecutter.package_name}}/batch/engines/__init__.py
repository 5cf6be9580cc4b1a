"""Engines that run batch scoring somewhere other than this process."""


class ClusterError(RuntimeError):
    """The cluster failed the job (a worker died, a task was lost), not the data."""
