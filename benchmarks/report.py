"""Writing the results: JSON, a Markdown report with ratios, and a PNG bar chart."""

import json
from pathlib import Path
from typing import Any

from batch import runtimes_report

REFERENCE = ("ours", "default")
NATIVE = ("ours", "native")
HEADLINE_POINT = {"rows": 1, "connections": 16}


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


def method(results: dict[str, Any]) -> str:
    return (
        f"Measured {results['date']} on {results['machine']}. Each configuration ran alone, its "
        f"server pinned to CPU {results['server_cpu']} and wrk (one thread) to CPU "
        f"{results['load_cpu']}; {results['rounds']} rounds, each in a different order "
        f"(see results.json); at every point {results['warmup_seconds']} s of "
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
        f"sends: {' and '.join(str(r) for r in found['rows'])} different iris rows. Largest "
        f"probability difference: {differences}.",
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
