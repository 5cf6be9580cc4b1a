"""Driving a server with wrk and reading its report."""

import json
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    output: str = ""

    def as_dict(self) -> dict[str, float]:
        values = asdict(self)
        del values["output"]
        return values


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def parse_wrk(output: str) -> LoadResult:
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in socket.groups()) if socket else 0
    )
    return LoadResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        output=output,
        # wrk prints no distribution when no request completed.
        p50_ms=_ms(percentiles["50"]) if "50" in percentiles else float("nan"),
        p99_ms=_ms(percentiles["99"]) if "99" in percentiles else float("nan"),
        requests=requests,
        errors=errors,
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
    """wrk with one thread per core (at most the connections), latency percentiles on."""
    threads = min(2, connections)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(post_script(body) if body is not None else "")
    command += ["-s", script.name, url]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    return parse_wrk(output)
