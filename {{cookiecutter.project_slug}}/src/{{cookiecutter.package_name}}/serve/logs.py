"""The server's logs: one JSON object per line on stdout, the access log included."""

import asyncio
import json
import logging
import sys
import time
from typing import Any

import orjson

from ..core.timestamps import utc_timestamp

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Each request is logged once, by our middleware, with its request id.
    logging.getLogger("uvicorn.access").disabled = True


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
