"""Batch scoring benchmark: `predict` in the generated image against a whole-file Arrow
baseline in the same image and run, per format; `predict` in ONNX Runtime against the native
model on the same files; peak memory on a large file; shard scaling; and the Dask engine
against one local process.

Every figure comes from inside the container: the rows/s of the read → predict → write loop
(after the model is loaded, as the baseline's), and the peak resident memory of the process.
Shard scaling and Dask are wall-clock: from the first container's start to the last one's end.

    python -m benchmarks.batch [--smoke] [--results FOLDER]
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from cookiecutter.main import cookiecutter

from benchmarks.run import (
    TAG_PREFIX,
    TEMPLATE,
    free_port,
    header,
    results_folder,
    training_features,
)

PACKAGE = "iris_classifier"
FORMATS = ("csv", "parquet", "jsonl")
# The runtimes `predict` is compared in (MODEL_RUNTIME), and the formats it is compared on.
RUNTIMES = ("onnx", "native")
RUNTIME_FORMATS = ("csv", "parquet")

# The baseline: the whole file read at once with Arrow, scored with the project's own
# prediction core, written at once, with no per-batch overhead at all. It holds the file in
# memory, which `predict` must not, and runs its steps one after another, where `predict`
# writes on a second thread.
BASELINE = """
import json, resource, sys, time
import numpy as np, pyarrow as pa
from {package}.core.settings import get_settings
from {package}.core.schema import FEATURE_NAMES
from {package}.core.artifact import load_artifact
from {package}.core.predict import predict_matrix

kind, source, target = sys.argv[1:]
artifact = load_artifact(get_settings().model_dir)
classes = [str(c) for c in artifact.metadata["classes"]]
started = time.perf_counter()
if kind == "csv":
    import pyarrow.csv as pcsv
    table = pcsv.read_csv(source)
elif kind == "parquet":
    import pyarrow.parquet as pq
    table = pq.read_table(source)
else:
    import pyarrow.json as pjson
    table = pjson.read_json(source)
matrix = np.column_stack([table.column(n).to_numpy().astype(np.float64) for n in FEATURE_NAMES])
labels, probabilities = predict_matrix(artifact.model, matrix)
predictions = pa.array(labels)  # the fast way to an Arrow string column, as `predict` does
if predictions.type != pa.string():
    predictions = predictions.cast(pa.string())
table = table.append_column("prediction", predictions)
for k, name in enumerate(classes):
    table = table.append_column(f"probability_{{name}}", pa.array(probabilities[:, k]))
if kind == "csv":
    pcsv.write_csv(table, target)
elif kind == "parquet":
    pq.write_table(table, target)
else:
    table.to_pandas().to_json(target, orient="records", lines=True, double_precision=15)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rows": table.num_rows, "seconds": seconds, "peak_memory_mb": peak}}))
"""


def make_rows(project: Path, count: int) -> pd.DataFrame:
    """`count` rows like the project's training data, each with an id: every feature drawn
    from a normal distribution of its mean and standard deviation there, rounded to 2
    decimals (the same rows on every call)."""
    features = training_features(project)
    rng = np.random.default_rng(0)
    matrix = rng.normal(
        features.mean().to_numpy(), features.std().to_numpy(), size=(count, features.shape[1])
    ).round(2)
    frame = pd.DataFrame(matrix, columns=features.columns)
    frame.insert(0, "id", np.arange(count).astype(str))
    return frame


def write(frame: pd.DataFrame, path: Path) -> None:
    kind = path.suffix.lstrip(".")
    if kind == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
    elif kind == "parquet":
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=250_000
        )
    else:
        frame.to_json(path, orient="records", lines=True)


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype={"id": str})
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    import pyarrow.csv as pcsv

    options = pcsv.ConvertOptions(column_types={"id": pa.string(), "prediction": pa.string()})
    return pcsv.read_csv(path, convert_options=options).to_pandas()


def same_answers(ours: Path, other: Path, rtol: float = 1e-9, atol: float = 1e-14) -> bool:
    """Both did the same work: the same rows, labels and probabilities. By default the
    probabilities within rtol 1e-9 and atol 1e-14, because pandas writes the baseline's JSON
    Lines with 15 decimal places, where `predict` writes every digit."""
    a, b = read_output(ours), read_output(other)
    probabilities = [c for c in a.columns if c.startswith("probability_")]
    return (
        list(a.columns) == list(b.columns)
        and a["id"].astype(str).tolist() == b["id"].astype(str).tolist()
        and (a["prediction"] == b["prediction"]).all()
        and np.allclose(a[probabilities], b[probabilities], rtol=rtol, atol=atol)
    )


def event(logs: str, name: str) -> dict[str, Any]:
    """The line of event `name` (`start`, `done`) that `predict` logs with LOG_FORMAT=json."""
    for line in logs.splitlines():
        if line.startswith("{") and f'"event": "{name}"' in line:
            return json.loads(line)
    raise RuntimeError(f"no {name} line in:\n{logs}")


def run(client: Any, tag: str, command: list[str], data: Path, **options: Any) -> str:
    container = client.containers.run(
        tag,
        command,
        volumes={str(data): {"bind": "/data", "mode": "rw"}},
        environment={"LOG_FORMAT": "json", **options.pop("environment", {})},
        detach=True,
        **options,
    )
    try:
        code = container.wait(timeout=1800)["StatusCode"]
        logs = container.logs().decode(errors="replace")
        if code != 0:
            raise RuntimeError(f"{command} exited {code}:\n{logs}")
        return logs
    finally:
        container.remove(force=True)


def formats(
    client: Any, tag: str, project: Path, data: Path, rows: int, rounds: int
) -> list[dict[str, Any]]:
    """Ours and the baseline on the same file, alternating, `rounds` times each; medians."""
    frame = make_rows(project, rows)
    table = []
    for kind in FORMATS:
        write(frame, data / f"in.{kind}")
        ours_runs, baseline_runs = [], []
        for _ in range(rounds):
            ours_runs.append(
                event(
                    run(
                        client,
                        tag,
                        ["predict", "--input", f"/data/in.{kind}", "--output", f"/data/out.{kind}"],
                        data,
                    ),
                    "done",
                )
            )
            output = run(
                client,
                tag,
                [
                    "-c",
                    BASELINE.format(package=PACKAGE),
                    kind,
                    f"/data/in.{kind}",
                    f"/data/base.{kind}",
                ],
                data,
                entrypoint="python",
            )
            baseline_runs.append(json.loads(output.strip().splitlines()[-1]))
        agree = same_answers(data / f"out.{kind}", data / f"base.{kind}")
        ours = float(np.median([r["rows_per_s"] for r in ours_runs]))
        baseline = float(np.median([r["rows"] / r["seconds"] for r in baseline_runs]))
        table.append(
            {
                "format": kind,
                "rows": rows,
                "rounds": rounds,
                "input_mb": round((data / f"in.{kind}").stat().st_size / 1e6, 1),
                "rows_per_s": round(ours),
                "rows_per_s_range": [
                    min(r["rows_per_s"] for r in ours_runs),
                    max(r["rows_per_s"] for r in ours_runs),
                ],
                "peak_memory_mb": max(r["peak_memory_mb"] for r in ours_runs),
                "baseline_rows_per_s": round(baseline),
                "baseline_peak_memory_mb": round(max(r["peak_memory_mb"] for r in baseline_runs)),
                "baseline_over_ours": round(baseline / ours, 2),
                "same_answers": agree,
            }
        )
        print(table[-1], flush=True)
        for name in (f"in.{kind}", f"out.{kind}", f"base.{kind}"):
            (data / name).unlink()
    return table


def model_metadata(client: Any, tag: str) -> dict[str, Any]:
    """The metadata.json of the model baked into the image."""
    output = client.containers.run(
        tag, ["-c", 'cat "$MODEL_DIR/metadata.json"'], entrypoint="sh", remove=True
    )
    return json.loads(output)


def runtimes(
    client: Any, tag: str, project: Path, data: Path, rows: int, rounds: int
) -> list[dict[str, Any]]:
    """`predict` on the same file in each of RUNTIMES (MODEL_RUNTIME), `rounds` times each,
    the runtimes' order swapped every round. Two figures, medians: rows/s of the whole job
    (`docker run` to exit: what a batch job or a shard costs, start-up included), which
    `onnx_over_native` compares, and rows/s inside the process (from its start line to its
    done line). The second alone would mislead: with the native model, the framework's import
    also imports pandas before scoring starts; in ONNX Runtime, Arrow imports it (when the
    image has it) at the first conversion, inside the scoring window. Each run must say it
    scored in the runtime asked for, and both runtimes must give the same labels, with
    probabilities within the tolerance the model's ONNX check guarantees."""
    tolerance = float(model_metadata(client, tag)["onnx"]["tolerance"])
    frame = make_rows(project, rows)
    table = []
    for kind in RUNTIME_FORMATS:
        write(frame, data / f"in.{kind}")
        rates: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        jobs: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        for round_index in range(rounds):
            for runtime in RUNTIMES[:: -1 if round_index % 2 else 1]:
                started = time.perf_counter()
                logs = run(
                    client,
                    tag,
                    [
                        "predict",
                        "--input",
                        f"/data/in.{kind}",
                        "--output",
                        f"/data/{runtime}.{kind}",
                    ],
                    data,
                    environment={"MODEL_RUNTIME": runtime},
                )
                jobs[runtime].append(rows / (time.perf_counter() - started))
                served = event(logs, "start")["runtime"]
                if served != runtime:
                    raise RuntimeError(f"MODEL_RUNTIME={runtime}: predict scored with {served}")
                rates[runtime].append(event(logs, "done")["rows_per_s"])
        medians = {runtime: float(np.median(found)) for runtime, found in rates.items()}
        job_medians = {runtime: float(np.median(found)) for runtime, found in jobs.items()}
        table.append(
            {
                "format": kind,
                "rows": rows,
                "rounds": rounds,
                **{
                    f"{runtime}_job_rows_per_s": round(job_medians[runtime]) for runtime in RUNTIMES
                },
                **{f"{runtime}_rows_per_s": round(medians[runtime]) for runtime in RUNTIMES},
                **{
                    f"{runtime}_rows_per_s_range": [min(rates[runtime]), max(rates[runtime])]
                    for runtime in RUNTIMES
                },
                "onnx_over_native": round(job_medians["onnx"] / job_medians["native"], 2),
                "onnx_over_native_in_process": round(medians["onnx"] / medians["native"], 2),
                "tolerance": tolerance,
                "same_answers": same_answers(
                    data / f"onnx.{kind}", data / f"native.{kind}", rtol=0, atol=tolerance
                ),
            }
        )
        print(table[-1], flush=True)
        for name in (f"in.{kind}", *(f"{runtime}.{kind}" for runtime in RUNTIMES)):
            (data / name).unlink()
    return table


def runtimes_report(table: list[dict[str, Any]], lead: str) -> list[str]:
    """The runtimes side by side, as Markdown: `lead`, how they were measured, the figures."""
    first = table[0]
    lines = [
        f"{lead} `predict` on the same files with MODEL_RUNTIME=onnx (ONNX Runtime) and "
        "MODEL_RUNTIME=native (the training framework), the median of "
        f"{first['rounds']} rounds, the order swapped every round. Job: rows/s from `docker "
        "run` to the container's exit, start-up included (what a job or a shard costs). In "
        "the process: from its start line to its done line; with the native model, pandas is "
        "imported with the framework before that window, in ONNX Runtime by Arrow inside it. "
        f"Same answers: the same labels, probabilities within {first['tolerance']:g} "
        "(absolute, the tolerance of the model's ONNX check).",
        "",
        "| format | rows | job rows/s ONNX / native | ONNX / native | in the process ONNX / "
        "native | ONNX / native | same answers |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['format']} | {row['rows']:,} | {row['onnx_job_rows_per_s']:,} / "
            f"{row['native_job_rows_per_s']:,} | {row['onnx_over_native']}x | "
            f"{row['onnx_rows_per_s']:,} / {row['native_rows_per_s']:,} | "
            f"{row['onnx_over_native_in_process']}x | "
            f"{'yes' if row['same_answers'] else 'NO'} |"
        )
    return lines


def large_file(client: Any, tag: str, project: Path, data: Path, rows: int) -> dict[str, Any]:
    write(make_rows(project, rows), data / "large.csv")
    done = event(
        run(
            client,
            tag,
            ["predict", "--input", "/data/large.csv", "--output", "/data/large-out.csv"],
            data,
        ),
        "done",
    )
    (data / "large-out.csv").unlink()
    return {
        "rows": rows,
        "rows_per_s": done["rows_per_s"],
        "peak_memory_mb": done["peak_memory_mb"],
    }


def column_count(path: Path) -> int:
    """The columns of a CSV or Parquet file, from its header or schema alone (Arrow's CSV
    reader needs the whole header in one block, and 100,000 names make more than 1 MB)."""
    if path.suffix == ".parquet":
        return len(pq.read_schema(path).names)
    with path.open(newline="") as handle:
        return len(next(csv.reader(handle)))


def wide(
    client: Any, tag: str, project: Path, data: Path, widths: tuple[int, ...]
) -> list[dict[str, Any]]:
    """5 rows with `width` extra columns (passed through), as CSV and as Parquet: `predict`'s
    seconds (`docker run` to exit) by width. Linear in the columns when the seconds grow as
    the width does, not as its square."""
    found = []
    for width in widths:
        frame = make_rows(project, 5)
        extra = pd.DataFrame({f"extra_{i}": np.full(5, i) for i in range(width)})
        frame = pd.concat([frame, extra], axis=1)
        for kind in ("csv", "parquet"):
            write(frame, data / f"wide.{kind}")
            command = [
                "predict",
                "--input",
                f"/data/wide.{kind}",
                "--output",
                f"/data/wide-out.{kind}",
            ]
            started = time.perf_counter()
            run(client, tag, command, data)
            seconds = time.perf_counter() - started
            columns = column_count(data / f"wide-out.{kind}")
            (data / f"wide.{kind}").unlink()
            (data / f"wide-out.{kind}").unlink()
            found.append(
                {
                    "format": kind,
                    "extra_columns": width,
                    "output_columns": columns,
                    "seconds": round(seconds, 2),
                }
            )
    return found


def timed(jobs: list[dict[str, Any]], client: Any, tag: str, data: Path) -> tuple[float, list[str]]:
    """Run the jobs at once; the wall-clock seconds from the first start to the last end,
    and each job's output."""
    started = time.perf_counter()
    with ThreadPoolExecutor(len(jobs)) as pool:
        outputs = list(pool.map(lambda job: run(client, tag, data=data, **job), jobs))
    return time.perf_counter() - started, outputs


def scoring_window(outputs: list[str]) -> float:
    """Seconds from the first `start` line to the last `done` line: the scoring itself,
    without the interpreters' start-up."""
    events = [
        json.loads(line) for out in outputs for line in out.splitlines() if line.startswith("{")
    ]
    stamp = lambda e: datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()  # noqa: E731
    starts = [stamp(e) for e in events if e.get("event") == "start"]
    ends = [stamp(e) for e in events if e.get("event") == "done"]
    return max(ends) - min(starts)


def shards(
    client: Any, tag: str, data: Path, counts: tuple[int, ...], cpus: float | None = None
) -> list[dict[str, Any]]:
    """The large file scored by 1, 2 and 4 shard containers at once, each limited to `cpus`
    (the Indexed Job's CPU limit) or free to use every core."""
    rows = int(json.loads((data / "large.csv.rows").read_text()))
    figures = []
    for count in counts:
        output = f"/data/shards-{count}-cpus-{cpus or 'all'}"
        jobs = [
            {
                "command": ["predict", "--input", "/data/large.csv", "--output", output],
                "environment": {"JOB_COMPLETION_INDEX": str(i), "SHARD_COUNT": str(count)},
                **({"nano_cpus": int(cpus * 1e9)} if cpus else {}),
            }
            for i in range(count)
        ]
        seconds, outputs = timed(jobs, client, tag, data)
        window = scoring_window(outputs)
        figures.append(
            {
                "shards": count,
                "cpus_per_shard": cpus or "all",
                "wall_s": round(seconds, 2),
                "wall_rows_per_s": round(rows / seconds),
                "scoring_s": round(window, 2),
                "scoring_rows_per_s": round(rows / window),
            }
        )
        print(figures[-1], flush=True)
    for figure in figures:
        figure["wall_speedup"] = round(figure["wall_rows_per_s"] / figures[0]["wall_rows_per_s"], 2)
        figure["scoring_speedup"] = round(
            figure["scoring_rows_per_s"] / figures[0]["scoring_rows_per_s"], 2
        )
    return figures


def dask(client: Any, tag: str, project: Path, data: Path, rows: int, parts: int) -> dict[str, Any]:
    """A folder of parts on a scheduler and two single-threaded workers, against one local
    process; all on the host's network."""
    folder = data / "parts"
    folder.mkdir()
    frame = make_rows(project, rows)
    for i, chunk in enumerate(np.array_split(np.arange(rows), parts)):
        write(frame.iloc[chunk], folder / f"{i:03d}.csv")
    local, local_output = timed(
        [{"command": ["predict", "--input", "/data/parts", "--output", "/data/local"]}],
        client,
        tag,
        data,
    )
    port = free_port()
    started = []
    try:
        started.append(
            client.containers.run(
                tag,
                ["scheduler", "--port", str(port), "--dashboard-address", ":0"],
                entrypoint="dask",
                network_mode="host",
                detach=True,
            )
        )
        for _ in range(2):
            started.append(
                client.containers.run(
                    tag,
                    [
                        "worker",
                        f"tcp://127.0.0.1:{port}",
                        "--nthreads",
                        "1",
                        "--dashboard-address",
                        ":0",
                    ],
                    entrypoint="dask",
                    network_mode="host",
                    detach=True,
                    volumes={str(data): {"bind": "/data", "mode": "rw"}},
                )
            )
        deadline = time.monotonic() + 60
        while sum(b"Registered to" in c.logs() for c in started[1:]) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the Dask workers did not register")
            time.sleep(0.2)
        cold, cold_output = timed(
            [
                {
                    "command": [
                        "predict",
                        "--engine",
                        "dask",
                        "--scheduler",
                        f"tcp://127.0.0.1:{port}",
                        "--input",
                        "/data/parts",
                        "--output",
                        "/data/on-dask",
                    ],
                    "network_mode": "host",
                }
            ],
            client,
            tag,
            data,
        )
        # Again, on workers that have the model loaded, as a long-lived cluster has.
        on_dask, dask_output = timed(
            [
                {
                    "command": [
                        "predict",
                        "--engine",
                        "dask",
                        "--scheduler",
                        f"tcp://127.0.0.1:{port}",
                        "--input",
                        "/data/parts",
                        "--output",
                        "/data/on-dask-warm",
                    ],
                    "network_mode": "host",
                }
            ],
            client,
            tag,
            data,
        )
    finally:
        for container in started:
            container.remove(force=True)
    return {
        "rows": rows,
        "parts": parts,
        "local_seconds": round(local, 2),
        "dask_2_workers_seconds": round(on_dask, 2),
        "dask_cold_seconds": round(cold, 2),
        "dask_cold_scoring_s": round(scoring_window(cold_output), 2),
        "dask_over_local": round(local / on_dask, 2),
        "local_scoring_s": round(scoring_window(local_output), 2),
        "dask_scoring_s": round(scoring_window(dask_output), 2),
    }


def image_sizes(client: Any, tag: str) -> dict[str, float]:
    """What Dask adds: the size of the packages it brings into the venv."""
    output = run(
        client,
        tag,
        [
            "-c",
            "import importlib.metadata as m, os, sys\n"
            "names = ['dask', 'distributed', 'fsspec', 'partd', 'locket', 'toolz', 'cloudpickle',"
            " 'msgpack', 'psutil', 'sortedcontainers', 'tblib', 'tornado', 'zict', 'jinja2',"
            " 'markupsafe', 'pyyaml', 'click', 'importlib-metadata', 'zipp', 'lazy-importer']\n"
            "total = 0\n"
            "for name in names:\n"
            "    try: files = m.distribution(name).files or []\n"
            "    except m.PackageNotFoundError: continue\n"
            "    total += sum(f.locate().stat().st_size for f in files if f.locate().exists())\n"
            "print(total)",
        ],
        Path(tempfile.gettempdir()),
        entrypoint="python",
    )
    return {
        "image_mb": round(client.images.get(tag).attrs["Size"] / 1e6, 1),
        "dask_and_its_dependencies_mb": round(int(output.strip().splitlines()[-1]) / 1e6, 1),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Batch scoring, {results['date']}",
        "",
        f"Machine: {results['machine']}. One `predict` process per container unless said. "
        f"Formats: the median of {results['formats'][0]['rounds']} rounds, ours and the "
        "baseline alternating; rows/s of the read → predict → write loop inside the process.",
        "",
        "| format | rows | input MB | `predict` rows/s | peak MB | whole-file Arrow baseline rows/s | baseline peak MB | baseline / ours | same answers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in results["formats"]:
        lines.append(
            f"| {row['format']} | {row['rows']:,} | {row['input_mb']} | {row['rows_per_s']:,} | "
            f"{row['peak_memory_mb']} | {row['baseline_rows_per_s']:,} | "
            f"{row['baseline_peak_memory_mb']} | {row['baseline_over_ours']} | "
            f"{'yes' if row['same_answers'] else 'NO'} |"
        )
    lines += ["", *runtimes_report(results["runtimes"], "Runtimes:")]
    large = results["large_file"]
    lines += [
        "",
        f"Large CSV: {large['rows']:,} rows at {large['rows_per_s']:,} rows/s, "
        f"peak memory {large['peak_memory_mb']} MB.",
        "",
        "Shards at once on 2 cores, each free to use every core, then each limited to 1 CPU as "
        "the Indexed Job's manifest limits it. Wall: from the first container's start to the "
        "last one's end. Scoring: from the first `start` line to the last `done` line (no "
        "start-up).",
        "",
        "| shards | CPUs each | wall s | wall rows/s | against 1 shard | scoring s | scoring rows/s | against 1 shard |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["shards"] + results["shards_one_cpu_each"]:
        lines.append(
            f"| {row['shards']} | {row['cpus_per_shard']} | {row['wall_s']} | {row['wall_rows_per_s']:,} | "
            f"{row['wall_speedup']}x | {row['scoring_s']} | {row['scoring_rows_per_s']:,} | "
            f"{row['scoring_speedup']}x |"
        )
    d = results["dask"]
    lines += [
        "",
        f"Dask: {d['rows']:,} rows in {d['parts']} CSV parts. One local process "
        f"{d['local_seconds']} s; a scheduler and 2 workers {d['dask_2_workers_seconds']} s "
        f"({d['dask_over_local']}x), container start-up included. Scoring alone: "
        f"{d['local_scoring_s']} s locally, {d['dask_scoring_s']} s on Dask. The first job on "
        f"fresh workers, which load the model then: {d['dask_cold_seconds']} s "
        f"({d['dask_cold_scoring_s']} s scoring); the figures above are the second job.",
        "",
        "Many columns: 5 rows with this many extra columns passed through, `docker run` "
        "to exit (seconds): "
        + "; ".join(
            f"{w['format']} {w['extra_columns']:,}: {w['seconds']} s" for w in results["wide"]
        )
        + ".",
        "",
        f"Image: {results['image']['image_mb']} MB, of which Dask and the packages it brings "
        f"{results['image']['dask_and_its_dependencies_mb']} MB.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="small files: proves it runs")
    parser.add_argument("--results", type=Path, help="default: benchmarks/results/<date>")
    parser.add_argument("--root", type=Path, default=TEMPLATE / "build" / "bench-batch")
    parser.add_argument(
        "--tag-prefix", default=TAG_PREFIX, help="of the image built: <prefix>batch:latest"
    )
    args = parser.parse_args()
    rows, large_rows = (20_000, 100_000) if args.smoke else (1_000_000, 5_000_000)
    rounds = 1 if args.smoke else 3
    tag = f"{args.tag_prefix}batch:latest"

    args.root.mkdir(parents=True, exist_ok=True)
    project = Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, overwrite_if_exists=True, output_dir=str(args.root)
        )
    )
    subprocess.run(
        ["docker", "build", "-q", "--target", "runtime", "-t", tag, str(project)],
        check=True,
        capture_output=True,
    )
    client = docker.from_env(version="auto", timeout=1800)
    results = header(args.smoke)
    with tempfile.TemporaryDirectory(dir=args.root) as folder:
        data = Path(folder)
        data.chmod(0o777)
        results["formats"] = formats(client, tag, project, data, rows, rounds)
        results["runtimes"] = runtimes(client, tag, project, data, rows, rounds)
        results["large_file"] = large_file(client, tag, project, data, large_rows)
        (data / "large.csv.rows").write_text(str(large_rows))
        results["shards"] = shards(client, tag, data, (1, 2, 4))
        results["shards_one_cpu_each"] = shards(client, tag, data, (1, 2, 4), cpus=1.0)
        results["dask"] = dask(client, tag, project, data, rows * 2, parts=8)
        widths = (1_000, 10_000) if args.smoke else (10_000, 40_000, 100_000)
        results["wide"] = wide(client, tag, project, data, widths)
    results["image"] = image_sizes(client, tag)
    folder = results_folder(args.results, args.root, args.smoke, results["date"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batch.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "batch.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
