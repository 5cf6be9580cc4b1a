"""Progress lines for long jobs: rows, rows/s, elapsed time and an ETA, at a steady interval.

Lines are plain text (`predict: 1,200,000 rows, ...`), or one JSON object each when
LOG_FORMAT=json (with the time, as the server's logs have it), so they read well in a
terminal, in `kubectl logs` and in a log pipeline.
"""

import json
import sys
import threading
import time
from typing import Any

from ..core.timestamps import utc_timestamp


class Progress:
    """Counts rows (and, for an ETA, bytes or rows of a known total) from any thread."""

    def __init__(
        self,
        command: str,
        *,
        interval: float,
        log_format: str = "text",
        total_rows: int | None = None,
        total_bytes: int | None = None,
    ) -> None:
        self.command = command
        self.interval = interval
        self.log_format = log_format
        self.total_rows = total_rows
        self.total_bytes = total_bytes
        self.rows = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self._last = self.started
        self._lock = threading.Lock()

    def add(self, rows: int, nbytes: int = 0) -> None:
        with self._lock:
            self.rows += rows
            self.bytes += nbytes
            now = time.perf_counter()
            if now - self._last < self.interval:
                return
            self._last = now
        self.emit("progress", **self._figures(now))

    def done(self, **fields: Any) -> None:
        """The one summary line at the end."""
        self.emit("done", **self._figures(time.perf_counter(), final=True), **fields)

    def emit(self, event: str, **fields: Any) -> None:
        if self.log_format == "json":
            stamped = {"time": utc_timestamp(time.time()), "command": self.command, "event": event}
            line = json.dumps({**stamped, **fields}, default=str)
        else:
            line = f"{self.command}: {event}: " + ", ".join(_text(k, v) for k, v in fields.items())
        print(line, file=sys.stdout, flush=True)

    def _figures(self, now: float, final: bool = False) -> dict[str, Any]:
        elapsed = now - self.started
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        figures: dict[str, Any] = {
            "rows": self.rows,
            "rows_per_s": round(rate),
            "elapsed_s": round(elapsed, 1),
        }
        if not final:
            share = None
            if self.total_rows:
                share = self.rows / self.total_rows
            elif self.total_bytes:
                share = self.bytes / self.total_bytes
            if share:
                figures["eta_s"] = round(max(elapsed / share - elapsed, 0.0), 1)
        return figures


def _text(name: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{name} {value:,}"
    return f"{name} {value}"
