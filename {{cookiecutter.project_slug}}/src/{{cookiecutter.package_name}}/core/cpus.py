"""How many CPUs this process may really use: the CPUs it may run on, capped by the
container's CPU limit (a Kubernetes `limits.cpu`, `docker run --cpus`), which Python's
`os.cpu_count()` does not see. Thread pools sized from it do not fight over a quota."""

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP) -> float | None:
    """The CPU limit of the process's cgroup (v2 or v1), or None when there is none."""
    try:
        if (root / "cpu.max").is_file():  # cgroup v2: "<quota> <period>" or "max <period>"
            text_quota, text_period = (root / "cpu.max").read_text().split()
            return None if text_quota == "max" else int(text_quota) / int(text_period)
        quota_file = root / "cpu" / "cpu.cfs_quota_us"  # cgroup v1: -1 means no limit
        if quota_file.is_file():
            quota = int(quota_file.read_text())
            period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: Path = CGROUP) -> int:
    usable = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(root)
    return max(1, min(usable, math.ceil(limit))) if limit else usable
