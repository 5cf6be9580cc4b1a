"""The generated server as the template renders it now, beside the same server rendered from an
earlier commit of the template, on this machine, side by side.

    python -m benchmarks.versus --ref 847ccae          # the full run (about 6 minutes)
    python -m benchmarks.versus --ref HEAD --smoke     # a short run that only proves it runs

A figure from an earlier day's results was measured on another machine, or on the same one under
another kernel: its difference from today's mixes the change of code with the change of machine.
This benchmark separates them. It renders the default project twice, from the template's files
now and from their state at `--ref` (`git archive`), installs each project's own lock (one
environment when the locks are the same), trains each on its own bundled data with its own
`train`, checks that both serve with ONNX Runtime and give the same labels and probabilities for
the rows the load sends, and then measures both at every point of bench.py, round after round in
alternating order, each alone, its server on one core and wrk on the other.
"""

import hashlib
import io
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import bench
from benchmarks.bench import FULL, SMOKE_ALL_POINTS, Plan
from benchmarks.run import TEMPLATE, arguments, results_folder, write_results
from benchmarks.servers import Server, ours

NOW, REF = "now", "ref"


def template_at(ref: str, folder: Path) -> Path:
    """The template's files at commit `ref`, extracted into `folder`."""
    archive = subprocess.run(
        ["git", "-C", str(TEMPLATE), "archive", "--format=tar", ref],
        capture_output=True,
        check=True,
    ).stdout
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def commit_of(ref: str) -> str:
    return subprocess.run(
        ["git", "-C", str(TEMPLATE), "rev-parse", "--short=12", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def version_server(root: Path, version: str, project: Path) -> Server:
    """Ours by default (ONNX Runtime) for one version: its own project, model folder and
    environment, named by its lock's hash so that two versions with one lock share it."""
    server = ours(root, project, "default", {}, runtime="onnx")
    lock = hashlib.sha256((project / "requirements.lock").read_bytes()).hexdigest()[:12]
    if version != NOW:  # now's model is bench.py's, root/model: the agreement check reads it
        server.env["MODEL_DIR"] = str(root / f"model-{version}")
    return replace(server, configuration=version, environment=f"ours-{lock}")


def prepare(root: Path, ref: str) -> list[Server]:
    """Both versions rendered, installed and trained; `now` first, the reference of the
    agreement check and of the ratios."""
    now_project = bench.render_project(root)
    ref_template = template_at(ref, root / "template-ref")
    ref_project = bench.render_project(root / "ref", template=ref_template)
    configurations = [
        version_server(root, NOW, now_project),
        version_server(root, REF, ref_project),
    ]
    bench.install(configurations, root)
    for server, project in zip(configurations, [now_project, ref_project], strict=True):
        bench.train_reference(server, root, project)
    return configurations


def comparison(load: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per point: each version's median requests/s and p50, and now's over ref's."""
    return [
        {
            "rows": rows,
            "connections": connections,
            "now_requests_per_s": versions[NOW]["requests_per_s"],
            "ref_requests_per_s": versions[REF]["requests_per_s"],
            "now_p50_ms": versions[NOW]["p50_ms"],
            "ref_p50_ms": versions[REF]["p50_ms"],
            "now_over_ref": versions[NOW]["requests_per_s"] / versions[REF]["requests_per_s"],
        }
        for rows, connections, versions in bench.by_point(load)
    ]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# The server now beside the template at {results['ref']} ({results['ref_commit']})",
        "",
        f"Measured {results['date']} on {results['machine']}"
        + (" (a smoke run: its figures mean nothing)" if results["smoke"] else "")
        + f". {results['rounds']} rounds in alternating order; at every point "
        f"{results['warmup_seconds']} s of load discarded, then {results['seconds']} s measured; "
        "each server alone, pinned to one core, wrk (one thread) on the other. Medians over "
        "rounds; requests/s counts successful answers only. Both serve the default project's "
        "model, trained by their own `train` on their own bundled data, in ONNX Runtime, and "
        f"gave the same labels and probabilities (rtol {results['agreement']['rtol']}, atol "
        f"{results['agreement']['atol']}) for the rows the load sends before any timing.",
        "",
        "| rows | connections | now: req/s | ref: req/s | now / ref | now: p50 ms | ref: p50 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results["comparison"]:
        lines.append(
            f"| {c['rows']} | {c['connections']} | {c['now_requests_per_s']:,.0f} | "
            f"{c['ref_requests_per_s']:,.0f} | {c['now_over_ref']:.2f}x | "
            f"{c['now_p50_ms']:.2f} | {c['ref_p50_ms']:.2f} |"
        )
    lines += ["", "Each round's figures are in versus.json (`measurements`).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = arguments(__doc__, "versus", "a short run: 2 rounds of 1 s")
    parser.add_argument("--ref", required=True, help="the template's commit to compare with")
    args = parser.parse_args()
    plan: Plan = SMOKE_ALL_POINTS if args.smoke else FULL
    results = bench.run_header(plan, args.smoke)
    results["ref"], results["ref_commit"] = args.ref, commit_of(args.ref)
    configurations = prepare(args.root, args.ref)
    results["agreement"] = bench.check_agreement(configurations, args.root)
    results["measurements"] = bench.measure_rounds(configurations, plan, args.root)
    results["load"] = bench.summarize(results["measurements"])
    results["comparison"] = comparison(results["load"])
    folder = results_folder(args.results, args.root, args.smoke, results["date"])
    write_results(results, folder, "versus", markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
