"""Measuring the generated images: the default one's size against its floor, build and
rebuild times, start-up and its import profile, shutdown, batch scoring speed and memory on a
large file, and batch scoring in ONNX Runtime against the native model; the slim serving
image's size, build and rebuild times, start-up and its import profile."""

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import numpy as np

from benchmarks import batch
from benchmarks.run import free_port
from benchmarks.servers import wait_until_ok

# The base image with the locked packages installed plainly, and the system packages the
# model's library needs: what any image of this project must hold at least. The packages
# come from the index, or from the project's wheels/ folder when it holds them (PyTorch's
# CPU build); a builder stage keeps those wheels out of the floor.
FLOOR_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS builder
COPY requirements.lock /tmp/requirements.lock
COPY wheels/ /tmp/wheels/
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir \\
    --find-links /tmp/wheels -r /tmp/requirements.lock

FROM ${BASE_IMAGE}
ARG SYSTEM_PACKAGES=""
RUN if [ -n "$SYSTEM_PACKAGES" ]; then apt-get update -q \\
    && apt-get install -y -q --no-install-recommends $SYSTEM_PACKAGES \\
    && rm -rf /var/lib/apt/lists/*; fi
COPY --from=builder /opt/venv /opt/venv
"""


def _build(project: Path, tag: str, nocache: bool = False, target: str = "runtime") -> float:
    """Seconds to build the Dockerfile's stage `target` (the default image: runtime)."""
    started = time.perf_counter()
    build = subprocess.run(
        [
            "docker",
            "build",
            "-q",
            *(["--no-cache"] if nocache else []),
            "--target",
            target,
            "-t",
            tag,
            str(project),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode:
        raise RuntimeError(f"docker build of {tag} failed:\n{build.stderr[-3000:]}")
    return time.perf_counter() - started


def _size(client: Any, tag: str) -> int:
    return int(client.images.get(tag).attrs["Size"])


def _venv_layer(client: Any, tag: str) -> int:
    for layer in client.images.get(tag).history():
        if "in /opt/venv" in layer["CreatedBy"] and layer["Size"] > 0:
            return int(layer["Size"])
    raise RuntimeError("no /opt/venv layer found in the image history")


def _ready_and_stop(client: Any, tag: str) -> tuple[float, float]:
    port = free_port()
    started = time.perf_counter()
    container = client.containers.run(tag, detach=True, ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/readyz", 60, 0.01)
        ready = time.perf_counter() - started
        started = time.perf_counter()
        container.stop(timeout=10)
        return ready, time.perf_counter() - started
    finally:
        container.remove(force=True)


def _batch_predict(client: Any, tag: str, project: Path, rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        data.chmod(0o777)
        batch.write(batch.make_rows(project, rows).drop(columns="id"), data / "in.csv")
        started = time.perf_counter()
        logs = client.containers.run(
            tag,
            ["predict", "--input", "/data/in.csv", "--output", "/data/out.csv"],
            volumes={str(data): {"bind": "/data", "mode": "rw"}},
            remove=True,
        ).decode()
        seconds = time.perf_counter() - started
        peak = re.search(r"peak_memory_mb ([\d.]+)", logs)
        return {
            "rows": rows,
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            "peak_memory_mb": float(peak.group(1)) if peak else float("nan"),
        }


STARTUP_SCRIPT = """
import time
started = time.perf_counter()
from {package}.serve.app import create_app
from {package}.core.settings import get_settings
from {package}.core.artifact import load_artifact
settings = get_settings()
create_app(settings)
load_artifact(settings.model_dir, settings.model_runtime)
print("seconds", time.perf_counter() - started)
"""
# How many modules the import profile names, those of largest cumulative import time.
TOP_IMPORTS = 10
# A line of `-X importtime`: the module's own microseconds, its cumulative ones, its name.
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)$")


def _startup_profile(client: Any, tag: str, package: str) -> dict[str, Any]:
    """Where the server's start-up goes, in the image: `python -X importtime` over the
    server's imports, its app and its model load as the server makes them. `seconds` is all
    of it; `import_ms` the import time of every module, the interpreter's own included (the
    sum of their self times); `top_imports_ms` the TOP_IMPORTS modules of largest cumulative
    time (a module's cumulative time includes the modules it imported first, so these
    overlap)."""
    output = client.containers.run(
        tag,
        ["-X", "importtime", "-c", STARTUP_SCRIPT.format(package=package)],
        entrypoint="python",
        remove=True,
        stdout=True,
        stderr=True,
    ).decode()
    self_us, cumulative_us = 0, {}
    for line in output.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            self_us += int(match.group(1))
            cumulative_us.setdefault(match.group(3), int(match.group(2)))
    seconds = float(re.search(r"seconds ([\d.]+)", output).group(1))  # type: ignore[union-attr]
    top = sorted(cumulative_us.items(), key=lambda item: -item[1])[:TOP_IMPORTS]
    return {
        "seconds": round(seconds, 2),
        "import_ms": round(self_us / 1000),
        "top_imports_ms": {name: round(us / 1000) for name, us in top},
    }


def build_floor(project: Path, base_image: str, tag: str, system_packages: str = "") -> None:
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(project / "requirements.lock", folder)
        shutil.copytree(project / "wheels", Path(folder) / "wheels")
        (Path(folder) / "Dockerfile").write_text(FLOOR_DOCKERFILE)
        build_args = [
            f"--build-arg=BASE_IMAGE={base_image}",
            f"--build-arg=SYSTEM_PACKAGES={system_packages}",
        ]
        subprocess.run(
            ["docker", "build", "-q", *build_args, "-t", tag, folder],
            check=True,
            capture_output=True,
        )


def code_rebuild(project: Path, tag: str, target: str = "runtime") -> float:
    """Seconds to rebuild after a code-only change: one more line in a source file, new on
    every run so that no earlier run's cached layer can answer for it."""
    source = project / "src" / project.name.replace("-", "_") / "core" / "schema.py"
    original = source.read_text()
    try:
        source.write_text(original + f"\n# a code-only change, {time.time_ns()}\n")
        return _build(project, tag, target=target)
    finally:
        source.write_text(original)


def ready_figures(client: Any, tag: str, runs: int) -> dict[str, Any]:
    """`docker run` to /readyz 200 and `docker stop`, the medians of `runs` runs."""
    ready, stop = zip(*(_ready_and_stop(client, tag) for _ in range(runs)), strict=True)
    return {
        "ready_runs": runs,
        "ready_s": round(float(np.median(ready)), 2),
        "stop_s": round(float(np.median(stop)), 2),
    }


def build_figures(
    client: Any,
    project: Path,
    base_image: str,
    cold: bool,
    tag: str,
    floor_tag: str,
    system_packages: str = "",
    ready_runs: int = 3,
) -> dict[str, Any]:
    """The image's build, rebuild, size against its floor, and `docker run` to ready."""
    results: dict[str, Any] = {"base_image": base_image}
    results["cold_build_s"] = round(_build(project, tag, nocache=cold), 2)
    results["cold_build_no_cache"] = cold
    results["code_rebuild_s"] = round(code_rebuild(project, tag), 2)
    build_floor(project, base_image, floor_tag, system_packages)
    size, floor = _size(client, tag), _size(client, floor_tag)
    results["image_mb"] = round(size / 1e6, 1)
    results["floor_mb"] = round(floor / 1e6, 1)
    results["image_vs_floor"] = round(size / floor, 3)
    results["base_mb"] = round(_size(client, base_image) / 1e6, 1)
    results["dependency_layer_mb"] = round(_venv_layer(client, tag) / 1e6, 1)
    results["floor_dependency_layer_mb"] = round((floor - _size(client, base_image)) / 1e6, 1)
    return {**results, **ready_figures(client, tag, ready_runs)}


def serve_figures(client: Any, project: Path, tag: str, ready_runs: int = 3) -> dict[str, Any]:
    """The slim serving image (the Dockerfile's `serve` stage), built once the runtime image
    is (the stages they share come from the layer cache): its build, its rebuild after a
    code-only change, its size, and `docker run` to ready."""
    results: dict[str, Any] = {"build_s": round(_build(project, tag, target="serve"), 2)}
    results["code_rebuild_s"] = round(code_rebuild(project, tag, target="serve"), 2)
    results["image_mb"] = round(_size(client, tag) / 1e6, 1)
    return {**results, **ready_figures(client, tag, ready_runs)}


def batch_runtimes(
    client: Any, tag: str, project: Path, rows: int, rounds: int
) -> list[dict[str, Any]]:
    """batch.py's comparison of `predict` in ONNX Runtime and natively, in this image."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        data.chmod(0o777)
        return batch.runtimes(client, tag, project, data, rows, rounds)


def measure(
    project: Path, base_image: str, predict_rows: int, cold: bool, tag_prefix: str, rounds: int
) -> dict[str, Any]:
    """The default image (runtime) and the slim one (serve): build, size, start-up and its
    import profile; batch scoring in the default image, in ONNX Runtime and natively
    (`rounds` rounds)."""
    client = docker.from_env(version="auto", timeout=900)
    package = project.name.replace("-", "_")
    tag, serve_tag = f"{tag_prefix}image:latest", f"{tag_prefix}serve:latest"
    results = build_figures(client, project, base_image, cold, tag, f"{tag_prefix}floor:latest")
    results["startup_profile"] = _startup_profile(client, tag, package)
    results["batch_predict"] = _batch_predict(client, tag, project, predict_rows)
    results["batch_runtimes"] = batch_runtimes(client, tag, project, predict_rows, rounds)
    results["serve"] = serve_figures(client, project, serve_tag)
    results["serve"]["startup_profile"] = _startup_profile(client, serve_tag, package)
    return results
