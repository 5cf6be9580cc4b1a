"""Driving a server with wrk and reading its report.

wrk runs one thread pinned to LOAD_CPU, the core the server does not use (servers.py).
"""

import json
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

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
