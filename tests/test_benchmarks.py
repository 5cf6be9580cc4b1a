"""The benchmark runs end to end (a short smoke run) and measures what it claims: every
configuration, the agreement of their answers, rounds. Its figures are not judged here:
timings belong in the benchmark's report, not in pass/fail tests."""

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import PYTHON, ROOT

CONFIGURATIONS = {
    ("ours", "default"),
    ("ours", "batching-off"),
    ("ours", "native"),
    ("mlserver", "default"),
    ("mlserver", "best"),
    ("bentoml", "default"),
    ("bentoml", "best"),
}


def run_smoke(module: str, results: Path, *options: str, timeout: int = 1800) -> None:
    """`python -m benchmarks.<module> --smoke`, its results written to `results` and its work
    folder (renders, peers' environments) beside them, so that pytest removes it once the test
    passes; it must succeed."""
    work = ["--root", str(results.parent / "work")]
    run = subprocess.run(
        [
            PYTHON,
            "-m",
            f"benchmarks.{module}",
            "--smoke",
            *options,
            *work,
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]


@pytest.mark.xdist_group("benchmark")
def test_benchmark_smoke_run(docker: object, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_smoke("bench", results)
    data = json.loads((results / "results.json").read_text())

    load = data["load"]
    assert {(r["server"], r["configuration"]) for r in load} == CONFIGURATIONS
    assert {r["rows"] for r in load} == {1, 100}
    assert {r["connections"] for r in load} == {1, 16}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in load), load
    assert data["rounds"] == 2 and all(r["rounds"] == 2 for r in load)
    assert len(data["measurements"]) == 2 * len(load)
    assert data["order"][0] != data["order"][1]

    agreement = data["agreement"]
    keys = {f"{server}-{configuration}" for server, configuration in CONFIGURATIONS}
    assert agreement["reference"] == "ours-default" and agreement["rtol"] <= 1e-6
    assert agreement["runtimes"] == {
        "ours-default": "onnx",
        "ours-batching-off": "onnx",
        "ours-native": "native",
    }
    assert set(agreement["max_abs_probability_difference"]) == keys
    for by_rows in agreement["max_abs_probability_difference"].values():
        assert set(by_rows) == {"1", "100"} and 0 <= max(by_rows.values()) < 1e-5
    assert data["onnx_check"]["verified"] is True
    assert set(data["configurations"]) == keys
    assert "MODEL_RUNTIME=native" in data["configurations"]["ours-native"]
    assert "parallel_workers" in data["configurations"]["mlserver-default"]

    assert data["livez_under_load"]["requests"] > 0
    image, serve = data["image"], data["image"]["serve"]
    assert image["image_mb"] > image["base_mb"] > 0
    assert image["batch_predict"]["rows"] == 20_000 and image["batch_predict"]["peak_memory_mb"] > 0
    assert 0 < serve["image_mb"] < image["image_mb"]
    assert serve["build_s"] > 0 and serve["code_rebuild_s"] > 0 and serve["ready_s"] > 0
    for profile in (image["startup_profile"], serve["startup_profile"]):
        assert profile["seconds"] > 0 and profile["import_ms"] > 0
        assert len(profile["top_imports_ms"]) == 10
        assert "iris_classifier.serve.app" in profile["top_imports_ms"]
    assert [row["format"] for row in image["batch_runtimes"]] == ["csv", "parquet"]
    for row in image["batch_runtimes"]:
        assert row["same_answers"] is True, row
        assert row["onnx_rows_per_s"] > 0 and row["native_rows_per_s"] > 0
        assert row["onnx_job_rows_per_s"] > 0 and row["native_job_rows_per_s"] > 0

    # Every target is computed from this run's figures; whether a smoke run meets it means
    # nothing.
    targets = data["targets"]
    assert len(targets) == 10
    assert all(t["value"] is not None and t["met"] in (True, False) for t in targets), targets
    assert sum("mlserver-" in t["target"] for t in targets) == 3
    assert sum("bentoml-" in t["target"] for t in targets) == 1

    report = (results / "results.md").read_text()
    for section in (
        "## ONNX fast path targets",
        "## Headline",
        "## Load",
        "## ONNX Runtime against the native model",
        "## Agreement",
        "## Configurations",
        "image / floor",
        "slim image (`--target serve`)",
    ):
        assert section in report
    table = report.split("## ONNX fast path targets")[1].split("\n## ")[0]
    assert table.count(" | yes |") + table.count(" | **no** |") == len(targets)
    assert "| mlserver | " in report.split("## Headline")[1].split("## Load")[0]
    assert "| bentoml | best | 1 | 16 |" in report
    assert "| ours | native | 100 | 16 |" in report
    assert (results / "throughput.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.xdist_group("benchmark")
def test_batch_benchmark_smoke_run(docker: object, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_smoke("batch", results)
    data = json.loads((results / "batch.json").read_text())
    assert [row["format"] for row in data["formats"]] == ["csv", "parquet", "jsonl"]
    for row in data["formats"]:
        assert row["rows"] == 20_000 and row["same_answers"] is True, row
        assert row["rows_per_s"] > 0 and row["baseline_rows_per_s"] > 0
        assert 0 < row["peak_memory_mb"] < 2_000
    assert [row["format"] for row in data["runtimes"]] == ["csv", "parquet"]
    for row in data["runtimes"]:
        assert row["rows"] == 20_000 and row["same_answers"] is True, row
        assert row["onnx_rows_per_s"] > 0 and row["native_rows_per_s"] > 0
        assert row["onnx_job_rows_per_s"] > 0 and row["native_job_rows_per_s"] > 0
    assert data["large_file"]["rows"] == 100_000
    assert [row["shards"] for row in data["shards"]] == [1, 2, 4]
    assert all(row["scoring_s"] > 0 for row in data["shards"])
    assert [row["cpus_per_shard"] for row in data["shards_one_cpu_each"]] == [1.0, 1.0, 1.0]
    assert data["dask"]["rows"] == 40_000 and data["dask"]["dask_scoring_s"] > 0
    assert 0 < data["image"]["dask_and_its_dependencies_mb"] < data["image"]["image_mb"]
    # Every extra column passes through: the features, the id, the extras and the scores.
    wide = {(row["format"], row["extra_columns"]): row for row in data["wide"]}
    assert set(wide) == {(kind, width) for kind in ("csv", "parquet") for width in (1_000, 10_000)}
    for (_kind, width), row in wide.items():
        assert row["output_columns"] > width + 1 and row["seconds"] > 0, row
    report = (results / "batch.md").read_text()
    assert "| csv | 20,000 |" in report
    assert "| format | rows | job rows/s ONNX / native | ONNX / native |" in report


@pytest.mark.xdist_group("benchmark")
def test_protocols_benchmark_smoke_run(docker: object, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_smoke("protocols", results)
    data = json.loads((results / "protocols.json").read_text())
    measured = {(r["configuration"], r["transport"], r["rows"]) for r in data["load"]}
    assert measured == {
        *(
            ("ours-default", t, rows)
            for t in ("grpc", "http-json", "http-binary")
            for rows in (1, 100)
        ),
        *(
            (peer, "grpc", rows)
            for peer in ("mlserver-default", "mlserver-best")
            for rows in (1, 100)
        ),
    }
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in data["load"]), data["load"]
    differences = data["agreement"]["max_abs_difference"]
    assert set(differences) == {"ours-default", "mlserver-default", "mlserver-best"}
    assert all(max(by_rows.values()) < 1e-5 for by_rows in differences.values())
    report = (results / "protocols.md").read_text()
    for section in ("## gRPC: ours against mlserver-best", "## HTTP: binary tensors against JSON"):
        assert section in report


FRAMEWORK_PEERS = {
    "sklearn": "mlserver-best",
    "xgboost": "mlserver-best",
    "lightgbm": "mlserver-best",
    "pytorch": "fastapi-torch-plain",
}


@pytest.mark.xdist_group("benchmark")
def test_frameworks_benchmark_smoke_run(docker: object, tmp_path: Path) -> None:
    results = tmp_path / "results"
    # The images are measured by the full run only: the template's image tests build every
    # framework's image, and bench.py's smoke run covers the image measurements.
    run_smoke("frameworks", results, "--skip-image", timeout=3600)
    data = json.loads((results / "frameworks.json").read_text())
    assert set(data["frameworks"]) == set(FRAMEWORK_PEERS)

    for name, found in data["frameworks"].items():
        peer = FRAMEWORK_PEERS[name]
        assert found["peer"] == peer
        keys = {"ours-default", peer}
        assert {f"{r['server']}-{r['configuration']}" for r in found["load"]} == keys, name
        assert {r["rows"] for r in found["load"]} == {1, 100}
        assert all(r["requests"] > 0 and r["errors"] == 0 for r in found["load"]), found["load"]
        assert all(r["rounds"] == data["rounds"] == 2 for r in found["load"])
        assert [(p["rows"], p["connections"]) for p in found["comparison"]] == [(1, 16), (100, 16)]
        assert all(p["ratio"] > 0 and p["errors"] == 0 for p in found["comparison"])

        agreement = found["agreement"]
        assert agreement["reference"] == "ours-default" and agreement["rtol"] <= 1e-6
        assert set(agreement["max_abs_probability_difference"]) == keys
        for by_rows in agreement["max_abs_probability_difference"].values():
            assert set(by_rows) == {"1", "100"} and 0 <= max(by_rows.values()) < 1e-5

    report = (results / "frameworks.md").read_text()
    headline = report.split("## Headline")[1].split("\n## ")[0]
    for name, peer in FRAMEWORK_PEERS.items():
        assert f"| {name} | {peer} | " in headline
        section = report.split(f"\n## {name}\n")[1].split("\n## ")[0]
        assert f"| rows | connections | ours req/s | {peer} req/s |" in section
    assert "## Method" in report


MIXED_CONFIGURATIONS = {
    "ours-default",
    "ours-native",
    "ours-image",
    "mlserver-default",
    "mlserver-best",
}


@pytest.mark.xdist_group("benchmark")
def test_mixed_benchmark_smoke_run(docker: object, tmp_path: Path) -> None:
    """A mixed-type table (numbers, integers, booleans, categories, missing values) from the
    project's own `schema infer` and `train`, served by ours (ONNX Runtime, native, its
    image) and MLServer: every configuration answers the same, then is measured."""
    results = tmp_path / "results"
    run_smoke("mixed", results, "--tag-prefix", "bench-test-")
    data = json.loads((results / "mixed.json").read_text())

    assert data["data"]["rows"] == 5_000 and len(data["data"]["missing_share"]) >= 2
    inferred = "\n".join(data["data"]["schema_infer"])
    assert "22 features (12 number, 4 integer, 2 boolean, 4 category)" in inferred, inferred
    assert data["model"]["onnx"]["verified"] is True

    agreement = data["agreement"]
    assert agreement["reference"] == "ours-default" and agreement["rtol"] <= 1e-6
    assert agreement["runtimes"] == {
        "ours-default": "onnx",
        "ours-native": "native",
        "ours-image": "onnx",
    }
    # MLServer either answers the same or is reported as failing, never timed wrong.
    timed = set(agreement["max_abs_probability_difference"])
    assert timed | set(agreement["failed"]) == MIXED_CONFIGURATIONS
    assert {"ours-default", "ours-native", "ours-image"} <= timed
    for by_rows in agreement["max_abs_probability_difference"].values():
        assert set(by_rows) == {"1", "100"} and 0 <= max(by_rows.values()) < 1e-5

    load = data["load"]
    assert {f"{r['server']}-{r['configuration']}" for r in load} == timed
    assert {(r["rows"], r["connections"]) for r in load} == {(1, 1), (1, 16), (100, 1), (100, 16)}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in load), load
    assert all(r["rounds"] == data["rounds"] == 2 for r in load)
    figures = {row["configuration"]: row for row in data["figures"]}
    assert set(figures) == timed
    for row in figures.values():
        assert row["single_row_p50_ms"] > 0
        assert row["rows_per_s_100_rows_1_connections"] > 0
    assert data["image"]["build_s"] > 0

    report = (results / "mixed.md").read_text()
    for section in ("## Figures", "## Load", "## Data and model", "## Agreement"):
        assert section in report
    assert "ONNX Runtime against the native model" in report
    assert "pre-encoded" in report


@pytest.mark.xdist_group("benchmark")
def test_versus_benchmark_smoke_run(tmp_path: Path) -> None:
    """The server now beside the template at a commit (here HEAD): both versions rendered,
    trained, agreeing, and measured at every point in each round."""
    results = tmp_path / "results"
    run_smoke("versus", results, "--ref", "HEAD")
    data = json.loads((results / "versus.json").read_text())

    assert data["ref"] == "HEAD" and len(data["ref_commit"]) == 12
    assert set(data["agreement"]["runtimes"].values()) == {"onnx"}
    assert set(data["agreement"]["max_abs_probability_difference"]) == {"ours-now", "ours-ref"}
    load = data["load"]
    assert {r["configuration"] for r in load} == {"now", "ref"}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in load), load
    assert all(r["rounds"] == data["rounds"] == 2 for r in load)
    points = {(c["rows"], c["connections"]) for c in data["comparison"]}
    assert points == {(1, 1), (1, 16), (100, 1), (100, 16)}
    assert all(c["now_over_ref"] > 0 for c in data["comparison"])
    assert "| now / ref |" in (results / "versus.md").read_text()


@pytest.mark.xdist_group("benchmark")
def test_payload_benchmark_smoke_run(tmp_path: Path) -> None:
    """The server without payload logging, with a sink (every request, and a tenth), and with
    a sink that is down: every configuration measured at every point without errors, and the
    sink received events."""
    results = tmp_path / "results"
    run_smoke("payload", results)
    data = json.loads((results / "payload.json").read_text())
    configurations = {"off", "sink", "sink-sampled", "sink-down"}
    assert set(data["configurations"]) == configurations
    points = {(c["rows"], c["connections"], c["configuration"]) for c in data["comparison"]}
    assert points == {
        (rows, connections, name)
        for rows in (1, 100)
        for connections in (1, 16)
        for name in configurations
    }
    assert all(c["requests_per_s"] > 0 and c["errors"] == 0 for c in data["comparison"])
    assert data["sink_received"] > 0
    assert "| against off |" in (results / "payload.md").read_text()
