"""Benchmark the generated server beside MLServer and BentoML, and measure its image.

    python -m benchmarks.bench            # the full run (about 15 minutes on 2 cores)
    python -m benchmarks.bench --smoke    # a short run that only proves everything works

Renders the default project, trains the reference model (StandardScaler + LogisticRegression on
the project's training data, data/train/) and serves it in seven configurations (servers.py):
ours by default (ONNX Runtime), without batching, and with the native model
(MODEL_RUNTIME=native); MLServer and BentoML each by default and at their best. Every
configuration runs alone while it is measured, its server pinned to one core and wrk to the
other. Before any timing, ours must serve with the runtime its configuration names, and all
must give the same labels and probabilities for the same rows. Then, round after round in a
rotated order, each is started, warmed up and measured at every point, and stopped. Last, the
images (image.py): the default one and the slim serving one. The report gives the median over
rounds and its spread, and the ONNX fast path's targets against this run's figures; it is
written as JSON, Markdown and a PNG chart.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from cookiecutter.main import cookiecutter

from benchmarks import image, report
from benchmarks.load import LOAD_CPU, run_wrk
from benchmarks.run import BENCHMARKS, TAG_PREFIX, TEMPLATE, arguments, header, results_folder
from benchmarks.servers import SERVER_CPU, Server, metadata_file, servers, training_rows

ROWS_PER_REQUEST = [1, 100]
AGREEMENT_RTOL = 1e-6


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int  # measured, per point and round
    warmup_seconds: int  # of load before each measured point, discarded
    connections: list[int]


FULL = Plan(rounds=5, seconds=4, warmup_seconds=1, connections=[1, 16])
# No warm-up in the smoke run: it proves that everything runs, its figures mean nothing.
SMOKE = Plan(rounds=2, seconds=1, warmup_seconds=0, connections=[16])
# This script's smoke run loads at both connection counts, so that it computes every target
# its report states.
SMOKE_ALL_POINTS = replace(SMOKE, connections=FULL.connections)


def render_project(root: Path, template: Path = TEMPLATE, **context: str) -> Path:
    """A fresh render of `template` (by default this one) under `root`, its earlier render
    and work folders removed (the virtual environments stay)."""
    if root.exists():
        shutil.rmtree(root / "project", ignore_errors=True)
        shutil.rmtree(root / "work", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    return Path(
        cookiecutter(
            str(template), no_input=True, output_dir=str(root / "project"), extra_context=context
        )
    )


def train_reference(ours: Server, root: Path, project: Path) -> None:
    """The project's own `train` on its bundled training data (data/train/), into the
    server's MODEL_DIR (root/model unless it says another)."""
    shutil.rmtree(ours.env["MODEL_DIR"], ignore_errors=True)
    subprocess.run(
        [str(ours.venv(root) / "bin/python"), "-m", "iris_classifier", "train"],
        env={**os.environ, **ours.env, "TRAINING_DATA_DIR": str(project / "data" / "train")},
        check=True,
    )


def export_reference(root: Path, mlserver: Server) -> None:
    """The skops model as the joblib file the scikit-learn peers load, in `mlserver`'s
    environment, which pins the same scikit-learn."""
    export = [str(root / "model/model.skops"), str(root / "model.joblib")]
    subprocess.run(
        [
            str(mlserver.venv(root) / "bin/python"),
            str(BENCHMARKS / "peers/export_reference.py"),
            *export,
            str(root / "model.classes.json"),
        ],
        check=True,
    )


def install(configurations: list[Server], root: Path) -> None:
    """Each environment once, by the first configuration that runs in it."""
    first: dict[Path, Server] = {}
    for server in configurations:
        first.setdefault(server.venv(root), server)
    for server in first.values():
        server.install(root)


def prepare(root: Path) -> tuple[Path, list[Server]]:
    project = render_project(root)
    configurations = servers(root, project)
    install(configurations, root)
    train_reference(configurations[0], root, project)
    export_reference(root, next(s for s in configurations if s.name == "mlserver"))
    return project, configurations


def probability_matrix(key: str, probabilities: list[dict[str, float]], classes: list[str]):
    """Rows of {class name: probability} as a matrix whose columns follow `classes`."""
    for row in probabilities:
        if sorted(row) != classes:
            raise RuntimeError(f"{key} gives probabilities for {sorted(row)}, not {classes}")
    return np.array([[row[name] for name in classes] for row in probabilities])


def onnx_tolerance(root: Path) -> float:
    """The largest probability difference training's ONNX check allows (metadata.json)."""
    return float(json.loads(metadata_file(root).read_text())["onnx"]["tolerance"])


def check_runtime(server: Server, runtimes: dict[str, str], problems: list[str]) -> None:
    """The runtime `server` says it serves with, into `runtimes`, when its configuration names
    one (ours); a problem when it is not that one. `server` is running."""
    if server.runtime is not None:
        runtimes[server.key] = server.served_runtime()
        if runtimes[server.key] != server.runtime:
            problems.append(
                f"{server.key} serves with {runtimes[server.key]}, not {server.runtime}"
            )


def check_agreement(configurations: list[Server], root: Path) -> dict[str, Any]:
    """Every configuration, started alone, must serve with the runtime it names (ours: ONNX
    Runtime or the native model) and give the reference's labels and probabilities (matched
    by class name) for the very rows the load sends; RuntimeError otherwise. Returns the
    runtimes and the largest probability difference per configuration and rows.

    Probabilities agree within AGREEMENT_RTOL, or within the tolerance training's ONNX check
    guarantees (absolute, from the model's metadata.json): ours answers from the ONNX model,
    a peer from the native one, and a converted tree model computes in 32-bit floats."""
    atol = onnx_tolerance(root)
    answers = {}
    runtimes: dict[str, str] = {}
    disagreements = []
    for server in configurations:
        server.start(root)
        try:
            check_runtime(server, runtimes, disagreements)
            for rows in ROWS_PER_REQUEST:
                answers[server.key, rows] = server.ask(training_rows(root, rows))
        finally:
            server.stop()
    reference = configurations[0].key
    differences: dict[str, dict[str, float]] = {}
    for server in configurations:
        differences[server.key] = {}
        for rows in ROWS_PER_REQUEST:
            expected_labels, expected_probabilities = answers[reference, rows]
            labels, probabilities = answers[server.key, rows]
            classes = sorted(expected_probabilities[0])
            expected = probability_matrix(reference, expected_probabilities, classes)
            found = probability_matrix(server.key, probabilities, classes)
            if labels != expected_labels or found.shape != expected.shape:
                disagreements.append(f"{server.key}, {rows} rows: labels {labels}")
                continue
            difference = float(np.abs(found - expected).max())
            differences[server.key][str(rows)] = difference
            if not np.allclose(found, expected, rtol=AGREEMENT_RTOL, atol=atol):
                disagreements.append(
                    f"{server.key}, {rows} rows: probabilities differ by up to {difference:.3g}"
                )
    if disagreements:
        raise RuntimeError(
            f"the servers disagree with {reference}:\n  " + "\n  ".join(disagreements)
        )
    print(
        f"bench: all configurations agree with {reference} (rtol {AGREEMENT_RTOL}, atol {atol})",
        flush=True,
    )
    return agreement_found(reference, atol, runtimes, differences)


def agreement_found(
    reference: str,
    atol: float,
    runtimes: dict[str, str],
    differences: dict[str, dict[str, float]],
    **more: Any,
) -> dict[str, Any]:
    """What an agreement check found, as the results record it: against which
    configuration, within which tolerances, for which rows; the runtimes ours served with
    and the largest probability difference per configuration and rows (and `more`)."""
    return {
        "reference": reference,
        "rtol": AGREEMENT_RTOL,
        "atol": atol,
        "rows": ROWS_PER_REQUEST,
        "runtimes": runtimes,
        "max_abs_probability_difference": differences,
        **more,
    }


def round_order(configurations: list[Server], round_index: int) -> list[Server]:
    """Round r starts at the r-th configuration and goes forwards on even rounds, backwards
    on odd ones: over the rounds, each configuration runs at a different position and after
    different neighbours."""
    step = -1 if round_index % 2 else 1
    count = len(configurations)
    return [configurations[(round_index + step * i) % count] for i in range(count)]


def measure_server(
    server: Server,
    plan: Plan,
    root: Path,
    round_index: int,
    rows_for: Callable[[Path, int], list[Any]] = training_rows,
) -> list[dict]:
    """Start `server`, warm it up and measure it at every point, stop it. `rows_for(root,
    count)` gives the rows each request carries (by default, rows of the training data)."""
    measurements = []
    server.start(root)
    try:
        for rows in ROWS_PER_REQUEST:
            body = server.body(rows_for(root, rows))
            for connections in plan.connections:
                if plan.warmup_seconds:
                    run_wrk(server.predict_url, connections, plan.warmup_seconds, body)
                result = run_wrk(server.predict_url, connections, plan.seconds, body)
                print(
                    f"bench:   {server.key:18s} rows={rows:<4d} conns={connections:<3d} "
                    f"{result.requests_per_s:9,.0f} req/s  p99 {result.p99_ms:7.2f} ms  "
                    f"errors {result.errors}",
                    flush=True,
                )
                measurements.append(
                    {
                        "round": round_index,
                        "server": server.name,
                        "configuration": server.configuration,
                        "rows": rows,
                        "connections": connections,
                        **result.as_dict(),
                    }
                )
    finally:
        server.stop()
    return measurements


def measure_rounds(
    configurations: list[Server],
    plan: Plan,
    root: Path,
    rows_for: Callable[[Path, int], list[Any]] = training_rows,
) -> list[dict]:
    measurements = []
    for round_index in range(plan.rounds):
        order = round_order(configurations, round_index)
        print(f"bench: round {round_index + 1}/{plan.rounds}: {[s.key for s in order]}", flush=True)
        for server in order:
            measurements += measure_server(server, plan, root, round_index, rows_for)
    return measurements


def summarize(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration and point: medians over rounds, the spread of requests/s,
    and the requests and errors of all rounds."""
    points: dict[tuple, list[dict[str, Any]]] = {}
    for m in measurements:
        points.setdefault(
            (m["server"], m["configuration"], m["rows"], m["connections"]), []
        ).append(m)
    summary = []
    for (server, configuration, rows, connections), runs in points.items():
        rates = [r["requests_per_s"] for r in runs]
        summary.append(
            {
                "server": server,
                "configuration": configuration,
                "rows": rows,
                "connections": connections,
                "rounds": len(runs),
                "requests_per_s": statistics.median(rates),
                "requests_per_s_min": min(rates),
                "requests_per_s_max": max(rates),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "requests": sum(r["requests"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
            }
        )
    return summary


def by_point(load: list[dict[str, Any]]) -> list[tuple[int, int, dict[str, dict[str, Any]]]]:
    """The summary rows of ours' configurations grouped by point: (rows, connections, {the
    configuration's name: its row}), in point order."""
    points: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for row in load:
        points.setdefault((row["rows"], row["connections"]), {})[row["configuration"]] = row
    return [(rows, connections, found) for (rows, connections), found in sorted(points.items())]


def livez_under_load(ours: Server, root: Path, seconds: int) -> dict[str, float]:
    """/livez latency while 16 connections saturate /predict, ours alone on its core."""
    ours.start(root)
    load = threading.Thread(
        target=run_wrk, args=(ours.predict_url, 16, seconds + 1, ours.body(training_rows(root, 1)))
    )
    try:
        load.start()
        threading.Event().wait(0.5)
        return run_wrk(f"http://127.0.0.1:{ours.port}/livez", 1, seconds).as_dict()
    finally:
        load.join()
        ours.stop()


def run_header(plan: Plan, smoke: bool) -> dict[str, Any]:
    """What the results of a benchmark under load say of the run: the header of every
    benchmark's, and how it loaded."""
    return {
        **header(smoke),
        "rounds": plan.rounds,
        "seconds": plan.seconds,
        "warmup_seconds": plan.warmup_seconds,
        "server_cpu": SERVER_CPU,
        "load_cpu": LOAD_CPU,
    }


def main() -> int:
    parser = arguments(__doc__, "bench", "a short run: 2 rounds of 1 s, fewer points")
    parser.add_argument("--skip-image", action="store_true", help="skip the image measurements")
    parser.add_argument(
        "--tag-prefix",
        default=TAG_PREFIX,
        help="of the images built: <prefix>image, <prefix>serve, <prefix>floor",
    )
    args = parser.parse_args()

    plan = SMOKE_ALL_POINTS if args.smoke else FULL
    results = run_header(plan, args.smoke)
    project, configurations = prepare(args.root)
    results["versions"] = {s.name: _version(s, args.root) for s in configurations}
    results["configurations"] = {s.key: s.settings for s in configurations}
    results["onnx_check"] = json.loads(metadata_file(args.root).read_text())["onnx"]
    results["agreement"] = check_agreement(configurations, args.root)
    results["order"] = [[s.key for s in round_order(configurations, r)] for r in range(plan.rounds)]
    results["measurements"] = measure_rounds(configurations, plan, args.root)
    results["load"] = summarize(results["measurements"])
    results["livez_under_load"] = livez_under_load(configurations[0], args.root, plan.seconds)
    if not args.skip_image:
        results["image"] = image.measure(
            project,
            "python:3.11-slim",
            20_000 if args.smoke else 1_000_000,
            cold=not args.smoke,
            tag_prefix=args.tag_prefix,
            rounds=1 if args.smoke else 3,
        )
    results["targets"] = report.onnx_targets(results)
    report.write(results, results_folder(args.results, args.root, args.smoke, results["date"]))
    return 0


def _version(server: Server, root: Path) -> str:
    package = {"ours": "fastapi", "mlserver": "mlserver", "bentoml": "bentoml"}[server.name]
    out = subprocess.run(
        [str(server.venv(root) / "bin/pip"), "show", package], capture_output=True, text=True
    ).stdout
    return f"{package} " + next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:")),
        "?",
    )


if __name__ == "__main__":
    sys.exit(main())
