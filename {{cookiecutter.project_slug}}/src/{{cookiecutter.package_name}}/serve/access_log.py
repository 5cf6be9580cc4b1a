"""The access log: one JSON line per request, in the shape of every other log line."""

import asyncio
import logging
import sys
import time
from typing import Any

import orjson

from ..core.logs import utc_timestamp


class AccessLog:
    """One JSON line per request on stdout, in the same shape as the other log lines.

    It runs for every request, so it skips the logging module and batches its writes: lines
    are buffered for at most FLUSH_SECONDS (or FLUSH_LINES lines) and written together,
    and the buffer is flushed when the server stops. Off when LOG_LEVEL is above info.
    """

    FLUSH_SECONDS = 0.05
    FLUSH_LINES = 256

    def __init__(self, level: str) -> None:
        self.enabled = logging.getLevelName(level.upper()) <= logging.INFO
        self._lines: list[bytes] = []
        self._flush_scheduled = False

    def write(self, **fields: Any) -> None:
        if not self.enabled:
            return
        entry = {"time": utc_timestamp(time.time()), "level": "info", "logger": "access"}
        self._lines.append(orjson.dumps({**entry, "message": "request", **fields}))
        if len(self._lines) >= self.FLUSH_LINES:
            self.flush()
        elif not self._flush_scheduled:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
                self._flush_scheduled = True
            except RuntimeError:  # no event loop: write now
                self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._lines:
            lines, self._lines = self._lines, []
            sys.stdout.write(b"\n".join(lines).decode() + "\n")
            sys.stdout.flush()
