"""Benchmark the generated server beside MLServer and BentoML, and measure its image.

    python benchmarks/bench.py            # the full run (about 5 minutes)
    python benchmarks/bench.py --smoke    # a short run that only proves everything works

Renders the default project, trains the reference model (StandardScaler + LogisticRegression
on iris), serves it three ways on 127.0.0.1 (one process each, each in its own virtual
environment with pinned versions), drives each with wrk, alternating the servers for every
configuration so drift hits all equally, and writes JSON, Markdown and a PNG chart.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

sys.path.insert(0, str(Path(__file__).resolve().parent))

import image
import report
from load import run_wrk
from servers import Server, servers

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent
PORTS = {"ours": 18100, "mlserver": 18110, "bentoml": 18120}


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.system()} {platform.release()}"


def prepare(root: Path) -> tuple[Path, list[Server]]:
    if root.exists():
        shutil.rmtree(root / "project", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(root / "project")))
    peers = servers(root, project)
    for server in peers:
        server.install(root)
        (root / "work" / server.name).mkdir(parents=True, exist_ok=True)
    ours = next(s for s in peers if s.name == "ours")
    shutil.rmtree(root / "model", ignore_errors=True)
    subprocess.run(
        [str(ours.venv(root) / "bin/python"), "-m", "iris_classifier", "train"],
        env={**os.environ, **ours.env, "TRAINING_DATA_DIR": str(root / "no-data")}, check=True,
    )  # fmt: skip
    mlserver = next(s for s in peers if s.name == "mlserver")
    subprocess.run(
        [str(mlserver.venv(root) / "bin/python"), str(HERE / "peers/export_reference.py"),
         str(root / "model/model.skops"), str(root / "model.joblib")],
        check=True,
    )  # fmt: skip
    return project, peers


def check_answers(peers: list[Server]) -> None:
    """Every server must give the same label for the same row before it is timed."""
    labels = {}
    for server in peers:
        answer = server.call(PORTS[server.name], 1)
        if "outputs" in answer:  # V2
            label = next(o["data"][0] for o in answer["outputs"] if o["name"] == "predict")
        else:
            label = answer["predictions"][0]
        labels[server.name] = label
    if len(set(labels.values())) != 1:
        raise RuntimeError(f"the servers disagree: {labels}")
    print(f"bench: all servers answer {labels['ours']!r} for the sample row", flush=True)


def load_matrix(
    peers: list[Server], seconds: float, connections: list[int], rows_list: list[int]
) -> list[dict[str, Any]]:
    runs = []
    for rows in rows_list:
        for conns in connections:
            for server in peers:  # alternate servers within each configuration
                url = f"http://127.0.0.1:{PORTS[server.name]}{server.predict_path}"
                result = run_wrk(url, conns, seconds, server.body(rows))
                runs.append(
                    {"server": server.name, "rows": rows, "connections": conns, **result.as_dict()}
                )
                print(
                    f"bench: {server.name:9s} rows={rows:<4d} conns={conns:<3d} {result.requests_per_s:9,.0f} req/s  p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                    flush=True,
                )
    return runs


def livez_under_load(ours: Server, seconds: int) -> dict[str, float]:
    base = f"http://127.0.0.1:{PORTS['ours']}"
    load = threading.Thread(target=run_wrk, args=(base + "/predict", 16, seconds + 1, ours.body(1)))
    load.start()
    try:
        threading.Event().wait(0.5)
        return run_wrk(base + "/livez", 1, seconds).as_dict()
    finally:
        load.join()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a short run: 1 s per point, fewer points"
    )
    parser.add_argument(
        "--root", type=Path, default=TEMPLATE / "build" / "bench", help="work folder"
    )
    parser.add_argument(
        "--results", type=Path, help="where to write (default: benchmarks/results/<date>)"
    )
    parser.add_argument("--skip-image", action="store_true", help="skip the image measurements")
    args = parser.parse_args()

    seconds = 1 if args.smoke else 10
    connections = [16] if args.smoke else [1, 16, 64]
    date = datetime.now(UTC)
    results: dict[str, Any] = {
        "date": date.strftime("%Y-%m-%d"),
        "machine": machine(),
        "seconds": seconds,
        "smoke": args.smoke,
    }
    project, peers = prepare(args.root)
    try:
        for server in peers:
            server.start(args.root, PORTS[server.name], args.root / f"{server.name}.log")
        check_answers(peers)
        results["versions"] = {s.name: _version(s, args.root) for s in peers}
        results["load"] = load_matrix(peers, seconds, connections, [1, 100])
        results["livez_under_load"] = livez_under_load(peers[0], seconds)
    finally:
        for server in peers:
            server.stop()
    if not args.skip_image:
        results["image"] = image.measure(
            project, "python:3.11-slim", 20_000 if args.smoke else 1_000_000, cold=not args.smoke
        )
    folder = args.results or (
        args.root / "results" if args.smoke else HERE / "results" / results["date"]
    )
    report.write(results, folder)
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
