"""Per-framework figures: ours beside MLServer's runtime for the same framework, and the image.

    python -m benchmarks.frameworks            # the full run (about 40 minutes on 2 cores)
    python -m benchmarks.frameworks --smoke    # a short run that only proves everything works

For each framework (scikit-learn, XGBoost, LightGBM, PyTorch) the template is rendered with
it, the project's own `train` fits the reference model on its bundled training data, and two
servers serve that very model: ours (the project's `serve`, by default) and a peer. The peer is
MLServer's own runtime for the framework at its best (adaptive batching); PyTorch has no
MLServer runtime, so its peer is a plain FastAPI app calling the same network
(peers/pytorch_service.py). The load method is bench.py's: before any timing both servers
must give the same labels and probabilities; then, round after round in a rotated order,
each runs alone pinned to one core with wrk on the other. Last, the framework's image is
built and measured (image.py): size against its own floor, cold build, code-only rebuild and
`docker run` to ready.
"""

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from benchmarks import image
from benchmarks.bench import (
    AGREEMENT_RTOL,
    FULL,
    ROWS_PER_REQUEST,
    SMOKE,
    Plan,
    check_agreement,
    export_reference,
    install,
    measure_rounds,
    render_project,
    round_order,
    run_header,
    summarize,
    train_reference,
)
from benchmarks.report import find, ratio
from benchmarks.run import BENCHMARKS, TEMPLATE, arguments, results_folder, write_results
from benchmarks.servers import (
    MLSERVER_BATCHING,
    SKLEARN_RUNTIME,
    Answer,
    MLServerRuntime,
    Server,
    exported_classes,
    metadata_file,
    mlserver,
    ours,
    probability_rows,
    read_predict_response,
    v2_outputs,
)

BASE_IMAGE = "python:3.11-slim"
PYTORCH_SERVICE = BENCHMARKS / "peers" / "pytorch_service.py"
HEADLINE = {"rows": 1, "connections": 16}
# The target at the headline point: this many times the peer's requests/s, with a
# p99 no worse.
TARGET_RATIO = 3.0


def read_xgboost_answer(root: Path, body: dict) -> Answer:
    """XGBClassifier's `predict` answers class indices: named by the exported classes."""
    classes = exported_classes(root)
    outputs = v2_outputs(body)
    labels = [classes[int(index)] for index in outputs["predict"]]
    return labels, probability_rows(classes, outputs["predict_proba"])


def read_lightgbm_answer(root: Path, body: dict) -> Answer:
    """The LightGBM runtime answers probabilities only; a label is its row's most likely
    class (the first on a tie, as numpy's argmax)."""
    probabilities = probability_rows(exported_classes(root), v2_outputs(body)["predict"])
    return [max(row, key=row.__getitem__) for row in probabilities], probabilities


XGBOOST_RUNTIME = MLServerRuntime(
    "mlserver_xgboost.XGBoostModel",
    "xgboost-classifier.json",
    BENCHMARKS / "requirements-mlserver-xgboost.txt",
    ("predict", "predict_proba"),
    read_xgboost_answer,
    "The project's model.json is a Booster saved by xgboost.train: the runtime would load it "
    "as an XGBRegressor, whose predict answers the probability matrix and which refuses "
    "predict_proba. peers/export_xgboost.py saves it through XGBClassifier (the same trees, "
    "the file marked as a classifier), so the runtime answers labels (class indices, named "
    "by metadata.json's classes) and probabilities, both asked for: it runs the booster "
    "twice per request, as the scikit-learn runtime does. parallel_workers=0, as for "
    "scikit-learn.",
    pip_options=("--no-deps",),
)
LIGHTGBM_RUNTIME = MLServerRuntime(
    "mlserver_lightgbm.LightGBMModel",
    "model/model.txt",
    BENCHMARKS / "requirements-mlserver-lightgbm.txt",
    (),
    read_lightgbm_answer,
    "The runtime serves the project's model.txt as written and answers one output, predict: "
    "Booster.predict's class probabilities (no labels; the check takes each row's most likely "
    "class). parallel_workers=0, as for scikit-learn.",
)


def mlserver_peer(runtime: MLServerRuntime) -> Callable[[Path, Path], Server]:
    def peer(root: Path, project: Path) -> Server:
        return mlserver(root, "best", MLSERVER_BATCHING, runtime)

    return peer


def pytorch_peer(root: Path, project: Path) -> Server:
    """peers/pytorch_service.py under uvicorn, in ours' environment (the same torch)."""
    return Server(
        "fastapi-torch",
        "plain",
        f"{PYTORCH_SERVICE.name}: one uvicorn worker, access log off, log level warning, a "
        "plain `def` route calling the project's network under torch.inference_mode(), no "
        "batching. PyTorch has no MLServer runtime.",
        project / "requirements.lock",
        "/ready",
        "/predict",
        lambda rows: rows,
        read_predict_response,
        lambda venv, work, port: [
            str(venv / "bin/python"),
            "-m",
            "uvicorn",
            "pytorch_service:app",
            "--app-dir",
            str(PYTORCH_SERVICE.parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={"BENCH_MODEL_DIR": str(root / "model"), "PYTHONPATH": str(project / "src")},
        environment="ours",
    )


def export_xgboost(root: Path, peer: Server) -> None:
    subprocess.run(
        [
            str(peer.venv(root) / "bin/python"),
            str(BENCHMARKS / "peers/export_xgboost.py"),
            str(root / "model/model.json"),
            str(root / XGBOOST_RUNTIME.model_file),
            str(metadata_file(root)),
            str(root / "model.classes.json"),
        ],
        check=True,
    )


def write_classes(root: Path, peer: Server) -> None:
    """The project's classes, the column order of its probabilities, for the peer's answers."""
    classes = json.loads(metadata_file(root).read_text())["classes"]
    (root / "model.classes.json").write_text(json.dumps(classes))


@dataclass(frozen=True)
class Framework:
    name: str
    peer: Callable[[Path, Path], Server]  # (root, project)
    # Readies the peer's model file from the project's (root/model), in the peer's venv.
    prepare_peer: Callable[[Path, Server], None]
    packages: tuple[str, ...]  # whose versions the report gives, in either environment
    # Whether the image is built from a filled wheels/ folder (`make wheelhouse`): PyTorch's
    # CPU build comes from the host's pip, not from an index the build reaches.
    wheelhouse: bool = False


FRAMEWORKS = [
    Framework(
        "sklearn",
        mlserver_peer(SKLEARN_RUNTIME),
        export_reference,
        ("scikit-learn", "mlserver", "mlserver-sklearn"),
    ),
    Framework(
        "xgboost",
        mlserver_peer(XGBOOST_RUNTIME),
        export_xgboost,
        ("xgboost-cpu", "mlserver", "mlserver-xgboost"),
    ),
    Framework(
        "lightgbm",
        mlserver_peer(LIGHTGBM_RUNTIME),
        write_classes,
        ("lightgbm", "mlserver", "mlserver-lightgbm"),
    ),
    Framework(
        "pytorch",
        pytorch_peer,
        write_classes,
        ("torch", "safetensors"),
        wheelhouse=True,
    ),
]


def package_versions(server: Server, root: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """The versions of those of `packages` installed in `server`'s environment."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "found = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(found))\n"
    )
    python = str(server.venv(root) / "bin/python")
    out = subprocess.run([python, "-c", script, *packages], capture_output=True, text=True)
    return json.loads(out.stdout or "{}")


def prepare(framework: Framework, root: Path) -> tuple[Path, list[Server]]:
    """Render the project with `framework`, install both servers, train the reference model
    and ready the peer's copy of it. Ours comes first: it is the reference."""
    project = render_project(root, framework=framework.name)
    configurations = [ours(root, project, "default", {}), framework.peer(root, project)]
    install(configurations, root)
    train_reference(configurations[0], root, project)
    framework.prepare_peer(root, configurations[1])
    return project, configurations


def system_packages(framework: Framework) -> str:
    """What the framework's image installs from Debian, as cookiecutter.json says."""
    answers = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    return str(answers["_system_packages"].get(framework.name, ""))


def fill_wheelhouse(project: Path) -> None:
    """The project's `make wheelhouse` from the host's pip, with no extra index."""
    print(f"frameworks: make wheelhouse in {project}", flush=True)
    subprocess.run(["make", "-C", str(project), "wheelhouse", "EXTRA_INDEX_URL="], check=True)


def measure_image(
    framework: Framework, project: Path, smoke: bool, tag_prefix: str
) -> dict[str, Any]:
    if framework.wheelhouse:
        fill_wheelhouse(project)
    print(f"frameworks: building the {framework.name} image", flush=True)
    client = docker.from_env(version="auto", timeout=900)
    return image.build_figures(
        client,
        project,
        BASE_IMAGE,
        cold=not smoke,
        tag=f"{tag_prefix}{framework.name}:latest",
        floor_tag=f"{tag_prefix}{framework.name}-floor:latest",
        system_packages=system_packages(framework),
        ready_runs=1 if smoke else 3,
    )


def comparison(load: list[dict[str, Any]], ours_server: Server, peer: Server) -> list[dict]:
    """Ours against the peer at every point measured."""
    rows = []
    for point in sorted({(r["rows"], r["connections"]) for r in load}):
        where = {"rows": point[0], "connections": point[1]}
        mine = find(load, ours_server.name, ours_server.configuration, **where)
        theirs = find(load, peer.name, peer.configuration, **where)
        if mine is None or theirs is None:
            continue
        rows.append(
            {
                **where,
                "ours_requests_per_s": mine["requests_per_s"],
                "peer_requests_per_s": theirs["requests_per_s"],
                "ratio": mine["requests_per_s"] / theirs["requests_per_s"]
                if theirs["requests_per_s"]
                else None,
                "ours_p99_ms": mine["p99_ms"],
                "peer_p99_ms": theirs["p99_ms"],
                "errors": mine["errors"] + theirs["errors"],
            }
        )
    return rows


def measure_framework(
    framework: Framework, plan: Plan, root: Path, skip_image: bool, tag_prefix: str
) -> dict[str, Any]:
    print(f"frameworks: {framework.name}", flush=True)
    project, configurations = prepare(framework, root)
    ours_server, peer = configurations
    results: dict[str, Any] = {
        "peer": peer.key,
        "versions": {
            s.key: package_versions(s, root, ("fastapi", *framework.packages))
            for s in configurations
        },
        "configurations": {s.key: s.settings for s in configurations},
        "agreement": check_agreement(configurations, root),
        "order": [[s.key for s in round_order(configurations, r)] for r in range(plan.rounds)],
    }
    results["measurements"] = measure_rounds(configurations, plan, root)
    results["load"] = summarize(results["measurements"])
    results["comparison"] = comparison(results["load"], ours_server, peer)
    if not skip_image:
        results["image"] = measure_image(framework, project, plan is SMOKE, tag_prefix)
    return results


def target_met(point: dict[str, Any]) -> bool:
    return (point["ratio"] or 0) >= TARGET_RATIO and point["ours_p99_ms"] <= point["peer_p99_ms"]


def headline(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Headline",
        "",
        f"{HEADLINE['rows']} row per request at {HEADLINE['connections']} connections, ours "
        f"(default) against the peer for the same framework. The target: at least "
        f"{TARGET_RATIO:g}x the peer's requests/s, with a p99 no worse.",
        "",
        "| framework | peer | ours req/s | peer req/s | ours vs peer | ours p99 ms | "
        "peer p99 ms | target met |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, found in results["frameworks"].items():
        point = next(
            (p for p in found["comparison"] if all(p[k] == v for k, v in HEADLINE.items())), None
        )
        if point is None:
            continue
        lines.append(
            f"| {name} | {found['peer']} | {point['ours_requests_per_s']:,.0f} | "
            f"{point['peer_requests_per_s']:,.0f} | "
            f"{ratio(point['ours_requests_per_s'], point['peer_requests_per_s'])} | "
            f"{point['ours_p99_ms']:.2f} | {point['peer_p99_ms']:.2f} | "
            f"{'yes' if target_met(point) else 'no'} |"
        )
    return lines


def image_table(figures: dict[str, Any]) -> list[str]:
    cold = "no cache" if figures["cold_build_no_cache"] else "layer cache, smoke"
    return [
        "| image | floor | image / floor | cold build | code-only rebuild | `docker run` to ready |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {figures['image_mb']:,.0f} MB | {figures['floor_mb']:,.0f} MB | "
        f"{figures['image_vs_floor']:.2f} | {figures['cold_build_s']:.0f} s ({cold}) | "
        f"{figures['code_rebuild_s']:.1f} s | {figures['ready_s']:.2f} s |",
    ]


def load_table(found: dict[str, Any]) -> list[str]:
    lines = [
        f"| rows | connections | ours req/s | {found['peer']} req/s | ours vs peer | "
        "ours p99 ms | peer p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in found["comparison"]:
        lines.append(
            f"| {point['rows']} | {point['connections']} | "
            f"{point['ours_requests_per_s']:,.0f} | {point['peer_requests_per_s']:,.0f} | "
            f"{ratio(point['ours_requests_per_s'], point['peer_requests_per_s'])} | "
            f"{point['ours_p99_ms']:.2f} | {point['peer_p99_ms']:.2f} | {point['errors']} |"
        )
    return lines


def framework_section(name: str, found: dict[str, Any]) -> list[str]:
    agreement = found["agreement"]
    largest = max(
        value
        for by_rows in agreement["max_abs_probability_difference"].values()
        for value in by_rows.values()
    )
    versions = "; ".join(
        f"{key}: " + ", ".join(f"{package} {version}" for package, version in packages.items())
        for key, packages in found["versions"].items()
    )
    lines = [f"## {name}", "", f"Versions: {versions}.", ""]
    if "image" in found:
        lines += ["Image:", "", *image_table(found["image"]), ""]
    lines += [
        f"Load, ours (default) against {found['peer']}:",
        "",
        *load_table(found),
        "",
        f"Agreement: the same labels, probabilities within rtol {agreement['rtol']:g} "
        f"(largest difference {largest:.3g}) for the bodies of "
        f"{' and '.join(map(str, agreement['rows']))} rows the load sends.",
        "",
        f"{found['peer']}: {found['configurations'][found['peer']]}",
        "",
    ]
    return lines


def method(results: dict[str, Any]) -> str:
    return (
        f"Measured {results['date']} on {results['machine']}. For each framework the template "
        "is rendered with it and the project's own `train` fits the reference model on the "
        "bundled training data; ours serves it with the project's `serve` (its defaults, log level "
        "warning), the peer serves the same fitted model. Before any timing, both must give "
        f"the same labels and probabilities within rtol {AGREEMENT_RTOL:g} or the absolute "
        "tolerance of training's ONNX check (ours answers from the ONNX model), matched by "
        f"class name. Each server ran alone, pinned to CPU {results['server_cpu']}, with wrk (one "
        f"thread) on CPU {results['load_cpu']}; {results['rounds']} rounds in a rotated order, "
        f"at every point {results['warmup_seconds']} s of load discarded, then "
        f"{results['seconds']} s measured. Requests/s counts successful answers only, the "
        "median over rounds; p99 is the median over rounds. The image: `docker build` of the "
        f"project on {BASE_IMAGE} (cold: --no-cache), then again after a one-line change to a "
        "source file; its size against its floor, the base image with the locked packages "
        "installed plainly plus the framework's system packages (an image below its floor: "
        "the image's venv holds no pip and no test suites); `docker run` until /readyz "
        "answers 200 (the median of the runs). The PyTorch image is built from a wheels/ "
        "folder filled by the project's `make wheelhouse`, from the host's pip."
    )


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Frameworks: ours beside the peer serving the same model", ""]
    if results["smoke"]:
        lines += ["**A smoke run: it proves the benchmark works; its figures mean nothing.**", ""]
    lines += [*headline(results), ""]
    for name, found in results["frameworks"].items():
        lines += framework_section(name, found)
    lines += ["## Method", "", method(results), ""]
    return "\n".join(lines)


def main() -> int:
    parser = arguments(
        __doc__,
        "bench-frameworks",
        "a short run: 2 rounds of 1 s, fewer points, images built with the layer cache",
    )
    parser.add_argument("--skip-image", action="store_true", help="skip the image measurements")
    parser.add_argument(
        "--only", choices=[f.name for f in FRAMEWORKS], action="append", help="these frameworks"
    )
    parser.add_argument(
        "--tag-prefix", default="bench-frameworks-", help="of the images built: <prefix><name>"
    )
    args = parser.parse_args()

    plan = SMOKE if args.smoke else FULL
    results = {
        **run_header(plan, args.smoke),
        "connections": plan.connections,
        "rows": ROWS_PER_REQUEST,
        "frameworks": {},
    }
    for framework in FRAMEWORKS:
        if args.only and framework.name not in args.only:
            continue
        results["frameworks"][framework.name] = measure_framework(
            framework, plan, args.root / framework.name, args.skip_image, args.tag_prefix
        )
    folder = results_folder(args.results, args.root, args.smoke, results["date"])
    write_results(results, folder, "frameworks", markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
