"""Writing the results: JSON, a Markdown table with ratios, and a PNG bar chart."""

import json
from pathlib import Path
from typing import Any


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.2f}x" if peer else "n/a"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Measured {results['date']} on {results['machine']}; {results['seconds']} s per run, "
        "one server process each, wrk on the same machine.",
        "",
        "| rows/request | connections | server | requests/s | rows/s | p50 ms | p99 ms | errors | ours vs this |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results["load"]:
        ours = next(
            r
            for r in results["load"]
            if r["server"] == "ours"
            and r["rows"] == run["rows"]
            and r["connections"] == run["connections"]
        )
        versus = (
            "" if run["server"] == "ours" else ratio(ours["requests_per_s"], run["requests_per_s"])
        )
        lines.append(
            f"| {run['rows']} | {run['connections']} | {run['server']} | {run['requests_per_s']:,.0f} | "
            f"{run['requests_per_s'] * run['rows']:,.0f} | {run['p50_ms']:.2f} | {run['p99_ms']:.2f} | "
            f"{run['errors']} | {versus} |"
        )
    if "livez_under_load" in results:
        live = results["livez_under_load"]
        lines += [
            "",
            f"`/livez` while `/predict` is saturated (16 connections): p50 {live['p50_ms']:.2f} ms, p99 {live['p99_ms']:.2f} ms.",
        ]
    if "image" in results:
        image = results["image"]
        batch = image["batch_predict"]
        lines += [
            "",
            "| image measure | value |",
            "|---|---:|",
            f"| runtime image | {image['image_mb']} MB |",
            f"| floor (base + runtime packages in a plain venv) | {image['floor_mb']} MB |",
            f"| image / floor | {image['image_vs_floor']} |",
            f"| dependency layer (ours / floor's) | {image['dependency_layer_mb']} MB / {image['floor_dependency_layer_mb']} MB |",
            f"| cold build{' (no cache)' if image['cold_build_no_cache'] else ''} | {image['cold_build_s']} s |",
            f"| code-only rebuild | {image['code_rebuild_s']} s |",
            f"| `docker run` to `/readyz` 200 | {image['ready_s']} s |",
            f"| `docker stop` (serve) | {image['stop_s']} s |",
            f"| batch predict, {batch['rows']:,} rows CSV | {batch['seconds']} s, {batch['rows_per_s']:,} rows/s, peak {batch['peak_memory_mb']:.0f} MB |",
        ]
    if "image" in results and "startup_profile" in results["image"]:
        profile = results["image"]["startup_profile"]
        imports = ", ".join(f"{name} {ms} ms" for name, ms in profile["imports_ms"].items())
        lines += [
            "",
            f"Start-up profile (imports and model load in the image, {profile['seconds']} s "
            f"with `-X importtime`): {imports}.",
        ]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    runs = results["load"]
    servers = list(dict.fromkeys(r["server"] for r in runs))
    configs = list(dict.fromkeys((r["rows"], r["connections"]) for r in runs))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for panel, rows in zip(axes, (1, 100), strict=True):
        chosen = [c for c in configs if c[0] == rows]
        width = 0.8 / max(len(servers), 1)
        for k, server in enumerate(servers):
            values = [
                next(
                    (
                        r["requests_per_s"] * rows
                        for r in runs
                        if r["server"] == server and (r["rows"], r["connections"]) == c
                    ),
                    0,
                )
                for c in chosen
            ]
            panel.bar([i + k * width for i in range(len(chosen))], values, width, label=server)
        panel.set_xticks(
            [i + width * (len(servers) - 1) / 2 for i in range(len(chosen))],
            [f"{c[1]} conn" for c in chosen],
        )
        panel.set_title(f"{rows} row(s) per request")
        panel.set_ylabel("rows/s")
        panel.legend()
    figure.suptitle(f"Throughput, {results['date']}")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write(results: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "results.md").write_text(markdown(results))
    chart(results, folder / "throughput.png")
    print(markdown(results))
