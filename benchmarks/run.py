"""What every benchmark run shares: where the template and the results are, what a run takes
on this host (its images' names, free ports), the rendered project's training data, and the
header its results begin with.

The bottom of the benchmarks' imports: every benchmark may import this module, and it imports
none of them.
"""

import argparse
import contextlib
import functools
import importlib
import json
import os
import platform
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

BENCHMARKS = Path(__file__).resolve().parent
TEMPLATE = BENCHMARKS.parent
# The images a run builds are named <prefix><name>: another prefix keeps two runs on one
# Docker engine from replacing each other's images.
TAG_PREFIX = os.environ.get("BENCH_TAG_PREFIX", "bench-")


def machine() -> str:
    model_names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    cpu = model_names[0] if model_names else platform.processor()
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.system()} {platform.release()}"


def free_port() -> int:
    return free_ports(1)


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 now (all held at once while
    they are found). Pick them just before the server binds them: a port found free minutes
    earlier may meanwhile be any client's local port."""
    while True:
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port + count > 65536:
                continue
            try:
                for offset in range(1, count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            return port


def training_features(project: Path) -> "pd.DataFrame":
    """The rendered project's training data (data/train/) as its model takes it: one float
    column per feature, in the schema's order, read by the project's own load_training_data
    (its package imported from src/). No benchmark names a column or a value of its own: the
    rows they send come from here. They send these numbers as they are, so they take numeric
    features, as the peers' servers (a plain matrix) do."""
    return _training_features(project.resolve()).copy()


@functools.cache
def _training_features(project: Path) -> "pd.DataFrame":
    data = project_module(project, "training.data")
    features, _target, _source = data.load_training_data(project / "data" / "train")
    return features


def project_module(project: Path, module: str) -> ModuleType:
    """A module of the rendered project's package (e.g. "core.encoding"), imported from its
    src/. Python imports a package once, with the schema.yaml it finds then: a process
    imports the modules of one render, after its schema is final."""
    src = project.resolve() / "src"
    [package] = [p.name for p in src.iterdir() if (p / "__init__.py").is_file()]
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return importlib.import_module(f"{package}.{module}")


def header(smoke: bool) -> dict[str, Any]:
    """What every benchmark's results say of the run: when, on what machine, and whether it
    was a smoke run."""
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(), "smoke": smoke}


def results_folder(given: Path | None, root: Path, smoke: bool, date: str) -> Path:
    """Where a run writes: the folder asked for (--results); else a smoke run's results go
    under its work folder `root`, a full run's under benchmarks/results/<date>."""
    if given is not None:
        return given
    return root / "results" if smoke else BENCHMARKS / "results" / date


def arguments(description: str, root: str, smoke: str) -> argparse.ArgumentParser:
    """The options every load benchmark takes: --smoke (`smoke` says what it runs), --root
    (its work folder, build/<root> by default) and --results."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help=smoke)
    parser.add_argument("--root", type=Path, default=TEMPLATE / "build" / root, help="work folder")
    parser.add_argument(
        "--results", type=Path, help="where to write (default: benchmarks/results/<date>)"
    )
    return parser


def write_results(results: dict[str, Any], folder: Path, name: str, markdown: str) -> None:
    """A benchmark's results as <name>.json (every figure) and <name>.md (its report)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / f"{name}.md").write_text(markdown)
    print(f"{name}: wrote {folder / f'{name}.md'}", flush=True)
