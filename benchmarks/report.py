"""Writing the results: JSON, a Markdown report with ratios, and a PNG bar chart."""

import json
from pathlib import Path
from typing import Any

from benchmarks.batch import RUNTIME_FORMATS, runtimes_report

REFERENCE = ("ours", "default")
NATIVE = ("ours", "native")
HEADLINE_POINT = {"rows": 1, "connections": 16}

# The ONNX fast path's targets. Ours is the reference configuration (ONNX Runtime, by
# default); a peer is its faster configuration at the point compared.
READY_S = 1.0  # `docker run` to /readyz 200, the median
SINGLE_ROW_P50_MS = 0.5  # 1 row per request, 1 connection
# 100 rows per request: ours' rows/s over MLServer's, by connections.
HUNDRED_ROWS_VS_MLSERVER = {1: 2.5, 16: 4.0}
# 1 row per request at 16 connections: ours' requests/s over each peer's.
SINGLE_ROW_16_VS_PEER = {"mlserver": 5.0, "bentoml": 14.0}
SERVE_IMAGE_MB = 350.0
BATCH_ONNX_OVER_NATIVE = 1.0  # rows/s in ONNX Runtime over the native model's, per format


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.2f}x" if peer else "n/a"


def find(load: list[dict[str, Any]], server: str, configuration: str, **point: int) -> dict | None:
    return next(
        (
            r
            for r in load
            if (r["server"], r["configuration"]) == (server, configuration)
            and all(r[name] == value for name, value in point.items())
        ),
        None,
    )


def fastest(load: list[dict[str, Any]], server: str, **point: int) -> dict | None:
    """The configuration of `server` that answered the most requests/s at `point`."""
    runs = [
        r
        for r in load
        if r["server"] == server and all(r[name] == value for name, value in point.items())
    ]
    return max(runs, key=lambda r: r["requests_per_s"], default=None)


def target(name: str, value: float | None, unit: str, bound: str, limit: float) -> dict:
    """One target: what this run measured (None: not measured), its bound ("at most" or
    "at least") and limit, and whether it is met (None: not measured)."""
    met = None if value is None else (value <= limit if bound == "at most" else value >= limit)
    return {
        "target": name,
        "value": value,
        "unit": unit,
        "bound": bound,
        "limit": limit,
        "met": met,
    }


def versus(
    load: list[dict[str, Any]], peer: str, rows: int, connections: int
) -> tuple[str, float | None]:
    """Ours' requests/s over the peer's faster configuration at a point, and which it was."""
    ours = find(load, *REFERENCE, rows=rows, connections=connections)
    theirs = fastest(load, peer, rows=rows, connections=connections)
    if ours is None or theirs is None or not theirs["requests_per_s"]:
        return peer, None
    return f"{peer}-{theirs['configuration']}", ours["requests_per_s"] / theirs["requests_per_s"]


def onnx_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the ONNX fast path, with this run's figure for it."""
    load = results["load"]
    image = results.get("image", {})
    serve = image.get("serve", {})
    ready = "`docker run` to `/readyz` 200, median"
    rows = [
        target(f"{ready}, default image (runtime)", image.get("ready_s"), "s", "at most", READY_S),
        target(f"{ready}, slim image (serve)", serve.get("ready_s"), "s", "at most", READY_S),
    ]
    single = find(load, *REFERENCE, rows=1, connections=1)
    p50 = single["p50_ms"] if single else None
    rows.append(target("1 row, 1 connection: p50", p50, "ms", "at most", SINGLE_ROW_P50_MS))
    for connections, limit in HUNDRED_ROWS_VS_MLSERVER.items():
        peer, value = versus(load, "mlserver", 100, connections)
        plural = "s" if connections > 1 else ""
        name = f"100 rows, {connections} connection{plural}: rows/s over {peer}'s"
        rows.append(target(name, value, "x", "at least", limit))
    for server, limit in SINGLE_ROW_16_VS_PEER.items():
        peer, value = versus(load, server, 1, 16)
        name = f"1 row, 16 connections: requests/s over {peer}'s"
        rows.append(target(name, value, "x", "at least", limit))
    rows.append(
        target("slim image (serve) size", serve.get("image_mb"), "MB", "at most", SERVE_IMAGE_MB)
    )
    batch = {row["format"]: row for row in image.get("batch_runtimes", [])}
    for kind in RUNTIME_FORMATS:
        value = batch[kind]["onnx_over_native"] if kind in batch else None
        name = f"batch `predict`, {kind}: job rows/s in ONNX Runtime over the native model's"
        rows.append(target(name, value, "x", "at least", BATCH_ONNX_OVER_NATIVE))
    return rows


def targets_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "## ONNX fast path targets",
        "",
        "Ours is the default configuration (ONNX Runtime); a peer is its faster "
        "configuration at the point compared.",
        "",
        "| target | measured | target | met |",
        "|---|---:|---:|---|",
    ]
    for row in results["targets"]:
        value, unit = row["value"], row["unit"]
        if value is None:
            measured, met = "not measured", "not measured"
        else:
            measured, met = quantity(value, unit), "yes" if row["met"] else "**no**"
        bound = ("≤ " if row["bound"] == "at most" else "≥ ") + quantity(row["limit"], unit, "g")
        lines.append(f"| {row['target']} | {measured} | {bound} | {met} |")
    return lines


def quantity(value: float, unit: str, spec: str = ",.2f") -> str:
    return f"{value:{spec}}x" if unit == "x" else f"{value:{spec}} {unit}"


def runtimes_section(results: dict[str, Any]) -> list[str]:
    """Ours in ONNX Runtime (the default) against ours with the native model, at every
    point, and the check training made of the ONNX model."""
    load = results["load"]
    lines = [
        "## ONNX Runtime against the native model",
        "",
        "| rows | connections | ONNX req/s | native req/s | ONNX / native | p50 ms ONNX / native "
        "| p99 ms ONNX / native |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in sorted({(r["rows"], r["connections"]) for r in load}):
        where = {"rows": point[0], "connections": point[1]}
        onnx, native = find(load, *REFERENCE, **where), find(load, *NATIVE, **where)
        if onnx is None or native is None:
            continue
        lines.append(
            f"| {point[0]} | {point[1]} | {onnx['requests_per_s']:,.0f} | "
            f"{native['requests_per_s']:,.0f} | "
            f"{ratio(onnx['requests_per_s'], native['requests_per_s'])} | "
            f"{onnx['p50_ms']:.2f} / {native['p50_ms']:.2f} | "
            f"{onnx['p99_ms']:.2f} / {native['p99_ms']:.2f} |"
        )
    check = results["onnx_check"]
    lines += [
        "",
        f"Training's ONNX check (metadata.json): {check['converter']} "
        f"{check['converter_version']}, opset {check['opset']}, ONNX Runtime "
        f"{check['onnxruntime']}; verified: {check['verified']}; largest probability "
        f"difference from the native model {check['max_abs_difference']:.2g} (tolerance "
        f"{check['tolerance']:g}) on "
        + ", ".join(f"{count} {name}" for name, count in check["rows_checked"].items())
        + " rows.",
    ]
    return lines


def method(results: dict[str, Any], file: str = "results.json") -> str:
    """How the load was measured; `file` is the JSON file that holds every round."""
    return (
        f"Measured {results['date']} on {results['machine']}. Each configuration ran alone, its "
        f"server pinned to CPU {results['server_cpu']} and wrk (one thread) to CPU "
        f"{results['load_cpu']}; {results['rounds']} rounds, each in a different order "
        f"(see {file}); at every point {results['warmup_seconds']} s of "
        f"load were discarded, then {results['seconds']} s measured. Requests/s counts "
        "successful answers only: the median over rounds, with its spread (min-max); p50 and "
        "p99 are the medians over rounds; errors are summed."
    )


def headline(results: dict[str, Any]) -> list[str]:
    load = results["load"]
    ours = find(load, *REFERENCE, **HEADLINE_POINT)
    peers = [r for r in load if r["configuration"] == "best" and r["server"] != REFERENCE[0]]
    lines = [
        "## Headline",
        "",
        f"{HEADLINE_POINT['rows']} row per request at {HEADLINE_POINT['connections']} "
        "connections, ours (default) against each peer's best configuration:",
        "",
        "| peer (best) | ours req/s | peer req/s | ours vs peer | ours p99 ms | peer p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for peer in peers:
        if ours is None or any(peer[k] != v for k, v in HEADLINE_POINT.items()):
            continue
        lines.append(
            f"| {peer['server']} | {ours['requests_per_s']:,.0f} | {peer['requests_per_s']:,.0f} | "
            f"{ratio(ours['requests_per_s'], peer['requests_per_s'])} | {ours['p99_ms']:.2f} | "
            f"{peer['p99_ms']:.2f} |"
        )
    return lines


def load_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Load",
        "",
        "| server | configuration | rows | connections | median req/s | spread req/s | rows/s "
        "| p50 ms | p99 ms | errors | ours vs this |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    load = results["load"]
    for run in sorted(load, key=lambda r: (r["rows"], r["connections"])):
        point = {"rows": run["rows"], "connections": run["connections"]}
        ours = find(load, *REFERENCE, **point)
        versus = (
            ""
            if ours is None or (run["server"], run["configuration"]) == REFERENCE
            else ratio(ours["requests_per_s"], run["requests_per_s"])
        )
        lines.append(
            f"| {run['server']} | {run['configuration']} | {run['rows']} | {run['connections']} "
            f"| {run['requests_per_s']:,.0f} "
            f"| {run['requests_per_s_min']:,.0f}-{run['requests_per_s_max']:,.0f} "
            f"| {run['requests_per_s'] * run['rows']:,.0f} | {run['p50_ms']:.2f} "
            f"| {run['p99_ms']:.2f} | {run['errors']} | {versus} |"
        )
    return lines


def agreement(results: dict[str, Any]) -> list[str]:
    found = results["agreement"]
    differences = "; ".join(
        f"{key} " + ", ".join(f"{d:.1e} ({rows} rows)" for rows, d in by_rows.items())
        for key, by_rows in found["max_abs_probability_difference"].items()
    )
    return [
        "## Agreement",
        "",
        f"Before any timing, every configuration answered {found['reference']}'s labels and "
        f"class probabilities (numpy allclose, rtol {found['rtol']}) for the bodies the load "
        f"sends: {' and '.join(str(r) for r in found['rows'])} different rows of the training "
        f"data. Largest probability difference: {differences}.",
    ]


def configurations(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Configurations",
        "",
        "Every server answers labels and probabilities for every row; each peer has one "
        "virtual environment for both its configurations (pinned in "
        "benchmarks/requirements-*.txt, uvloop and httptools included, which uvicorn picks "
        "up by itself).",
        "",
    ]
    lines += [f"- **{key}**: {settings}" for key, settings in results["configurations"].items()]
    return lines


def image_lines(image: dict[str, Any]) -> list[str]:
    batch = image["batch_predict"]
    serve = image["serve"]
    lines = [
        "## Image",
        "",
        "| image measure | value |",
        "|---|---:|",
        f"| runtime image | {image['image_mb']} MB |",
        f"| floor (base + runtime packages in a plain venv) | {image['floor_mb']} MB |",
        f"| image / floor | {image['image_vs_floor']} |",
        f"| dependency layer (ours / floor's) | {image['dependency_layer_mb']} MB / "
        f"{image['floor_dependency_layer_mb']} MB |",
        f"| cold build{' (no cache)' if image['cold_build_no_cache'] else ''} | "
        f"{image['cold_build_s']} s |",
        f"| code-only rebuild | {image['code_rebuild_s']} s |",
        f"| `docker run` to `/readyz` 200 (median of {image['ready_runs']}) | "
        f"{image['ready_s']} s |",
        f"| `docker stop` (serve) | {image['stop_s']} s |",
        f"| batch predict, {batch['rows']:,} rows CSV | {batch['seconds']} s, "
        f"{batch['rows_per_s']:,} rows/s, peak {batch['peak_memory_mb']:.0f} MB |",
        f"| slim image (`--target serve`) | {serve['image_mb']} MB |",
        f"| slim image: build after the runtime image | {serve['build_s']} s |",
        f"| slim image: code-only rebuild | {serve['code_rebuild_s']} s |",
        f"| slim image: `docker run` to `/readyz` 200 (median of {serve['ready_runs']}) | "
        f"{serve['ready_s']} s |",
        f"| slim image: `docker stop` (serve) | {serve['stop_s']} s |",
        "",
        "Start-up profile: in each image, `python -X importtime` over the server's imports, "
        "its app and its model load, as the server makes them. Imports: every module's own "
        "time, summed. The modules of largest cumulative time (which includes the modules "
        "each imported first, so these overlap):",
        "",
    ]
    for name, found in (("runtime image", image), ("slim image", serve)):
        profile = found["startup_profile"]
        largest = ", ".join(f"{module} {ms} ms" for module, ms in profile["top_imports_ms"].items())
        lines.append(
            f"- {name}: {profile['seconds']} s in all, imports {profile['import_ms']} ms; "
            f"{largest}."
        )
    lines += ["", *runtimes_report(image["batch_runtimes"], "Batch scoring in the runtime image:")]
    return lines


def markdown(results: dict[str, Any]) -> str:
    versions = ", ".join(results["versions"].values())
    sections = [
        [method(results)],
        [f"Versions: {versions}."],
        targets_table(results),
        headline(results),
        load_table(results),
        runtimes_section(results),
    ]
    if "livez_under_load" in results:
        live = results["livez_under_load"]
        sections.append(
            [
                f"`/livez` while `/predict` is saturated (16 connections): p50 "
                f"{live['p50_ms']:.2f} ms, p99 {live['p99_ms']:.2f} ms."
            ]
        )
    sections += [agreement(results), configurations(results)]
    if "image" in results:
        sections.append(image_lines(results["image"]))
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    """Rows/s per configuration at every point; error bars span the rounds' min-max."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    load = results["load"]
    keys = list(dict.fromkeys((r["server"], r["configuration"]) for r in load))
    connections = sorted({r["connections"] for r in load})
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    width = 0.8 / len(keys)
    for panel, rows in zip(axes, (1, 100), strict=True):
        for k, key in enumerate(keys):
            runs = [find(load, *key, rows=rows, connections=c) for c in connections]
            present = [(i, r) for i, r in enumerate(runs) if r is not None]
            panel.bar(
                [i + k * width for i, _ in present],
                [r["requests_per_s"] * rows for _, r in present],
                width,
                yerr=[
                    [(r["requests_per_s"] - r["requests_per_s_min"]) * rows for _, r in present],
                    [(r["requests_per_s_max"] - r["requests_per_s"]) * rows for _, r in present],
                ],
                capsize=2,
                label=" ".join(key),
            )
        panel.set_xticks(
            [i + width * (len(keys) - 1) / 2 for i in range(len(connections))],
            [f"{c} conn" for c in connections],
        )
        panel.set_title(f"{rows} row(s) per request")
        panel.set_ylabel("rows/s (median, min-max)")
        panel.legend(fontsize="small")
    figure.suptitle(f"Throughput, {results['date']}, {results['rounds']} rounds")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write(results: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "results.md").write_text(markdown(results))
    chart(results, folder / "throughput.png")
    print(markdown(results))
