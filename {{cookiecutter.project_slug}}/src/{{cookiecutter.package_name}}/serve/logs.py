"""Structured logs: one JSON object per line on stdout."""

import json
import logging
import sys
import time
from typing import Any

import orjson

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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
    """One JSON line per request, written straight to stdout.

    The same shape as the other log lines, without the logging module's per-record cost
    (it runs for every request). Off when LOG_LEVEL is above info.
    """

    def __init__(self, level: str) -> None:
        self.enabled = logging.getLevelName(level.upper()) <= logging.INFO
        self._out = sys.stdout

    def write(self, **fields: Any) -> None:
        if not self.enabled:
            return
        now = time.time()
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        )
        entry = {"time": stamp, "level": "info", "logger": "access", "message": "request", **fields}
        self._out.write(orjson.dumps(entry).decode() + "\n")
