"""Driving a server with wrk (HTTP/1.1) or h2load (gRPC over HTTP/2, and HTTP bodies wrk's
Lua strings cannot hold) and reading their reports.

Both run one thread pinned to LOAD_CPU, the core the server does not use (servers.py).
"""

import json
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

LOAD_CPU = "1"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class LoadResult:
    requests_per_s: float  # successful answers only
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def parse_wrk(output: str) -> LoadResult:
    """wrk's requests/s counts every answer, errors included: this counts successes only,
    (requests - non-2xx - socket errors) / duration."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    requests, duration = re.search(r"(\d+) requests in ([\d.]+\w+),", output).groups()  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in socket.groups()) if socket else 0
    )
    seconds = _ms(duration) / 1000
    return LoadResult(
        requests_per_s=max(int(requests) - errors, 0) / seconds,
        # wrk prints no distribution when no request completed.
        p50_ms=_ms(percentiles["50"]) if "50" in percentiles else float("nan"),
        p99_ms=_ms(percentiles["99"]) if "99" in percentiles else float("nan"),
        requests=int(requests),
        errors=errors,
        seconds=seconds,
    )


def post_script(body: object) -> str:
    payload = json.dumps(body)
    assert "]==]" not in payload
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{payload}]==]\n"
    )


def run_wrk(url: str, connections: int, seconds: int, body: object | None = None) -> LoadResult:
    """One wrk thread on LOAD_CPU, latency percentiles on; POSTs `body` when given."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(post_script(body) if body is not None else "")
    wrk = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    command = ["taskset", "-c", LOAD_CPU, *wrk, "-s", script.name, url]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    return parse_wrk(output)


def parse_h2load(output: str, log: str, answer_bytes: int | None) -> LoadResult:
    """h2load's summary and its per-request log (start, status, microseconds). A success is
    a 2xx; for gRPC, whose failures also answer 200 (the status is in the trailers), the
    successes are further capped by the DATA bytes received over the bytes of one good
    answer, so a call answered by a trailer alone counts as an error."""
    seconds = _ms(re.search(r"finished in ([\d.]+\w+),", output).group(1)) / 1000  # type: ignore[union-attr]
    records = [line.split("\t") for line in log.splitlines() if line.strip()]
    durations = sorted(int(duration) / 1000 for _, status, duration in records)
    ok = sum(status.startswith("2") for _, status, _ in records)
    if answer_bytes is not None:
        data = int(re.search(r"traffic: .*\((\d+)\) data", output).group(1))  # type: ignore[union-attr]
        ok = min(ok, data // answer_bytes)
    return LoadResult(
        requests_per_s=ok / seconds,
        p50_ms=float(np.percentile(durations, 50)) if durations else float("nan"),
        p99_ms=float(np.percentile(durations, 99)) if durations else float("nan"),
        requests=len(records),
        errors=len(records) - ok,
        seconds=seconds,
    )


def run_h2load(
    url: str,
    connections: int,
    seconds: int,
    body: bytes,
    headers: dict[str, str],
    http1: bool = False,
    answer_bytes: int | None = None,
) -> LoadResult:
    """h2load, one thread on LOAD_CPU, POSTing `body`: `connections` HTTP/2 connections of
    one stream each (gRPC), or HTTP/1.1 keep-alive connections with `http1`."""
    with tempfile.TemporaryDirectory() as folder:
        data, log = Path(folder) / "body", Path(folder) / "log"
        data.write_bytes(body)
        h2load = ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{seconds}", "-d", str(data)]
        h2load += [f"--log-file={log}", *(f"-H{name}: {value}" for name, value in headers.items())]
        command = ["taskset", "-c", LOAD_CPU, *h2load, *(["--h1"] if http1 else []), url]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return parse_h2load(output, log.read_text(), answer_bytes)
