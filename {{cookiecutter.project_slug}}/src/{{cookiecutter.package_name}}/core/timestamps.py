"""Timestamps of log and progress lines: ISO 8601 in UTC, to the millisecond, the same in
every line any command writes."""

import time
from functools import lru_cache


@lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def utc_timestamp(now: float) -> str:
    """ISO 8601 UTC time to the millisecond, the same for every log line."""
    second = int(now)
    return f"{_utc_second(second)}.{int((now - second) * 1000):03d}Z"
