"""The benchmark runs end to end (a short smoke run). Its figures are not judged here:
timings belong in the benchmark's report, not in pass/fail tests."""

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import PYTHON, ROOT


@pytest.mark.xdist_group("benchmark")
def test_benchmark_smoke_run(docker: object, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run = subprocess.run(
        [PYTHON, str(ROOT / "benchmarks/bench.py"), "--smoke", "--results", str(results)],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    data = json.loads((results / "results.json").read_text())
    servers = {r["server"] for r in data["load"]}
    assert servers == {"ours", "mlserver", "bentoml"}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in data["load"]), data["load"]
    assert {r["rows"] for r in data["load"]} == {1, 100}
    assert data["livez_under_load"]["requests"] > 0
    image = data["image"]
    assert image["image_mb"] > image["base_mb"] > 0
    assert image["batch_predict"]["rows"] == 20_000 and image["batch_predict"]["peak_memory_mb"] > 0
    assert "skops.io" in image["startup_profile"]["imports_ms"]
    table = (results / "results.md").read_text()
    assert "| 1 | 16 | mlserver |" in table and "image / floor" in table
    assert (results / "throughput.png").read_bytes()[:4] == b"\x89PNG"
