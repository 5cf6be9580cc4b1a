"""A mixed-type table: ours (ONNX Runtime and the native model) beside MLServer's scikit-learn
runtime, serving the same fitted pipeline.

    python -m benchmarks.mixed            # the full run (about 15 minutes on 2 cores)
    python -m benchmarks.mixed --smoke    # a short run that only proves everything works

The data is a synthetic table, seeded (DATA_SEED): 22 features, 12 numbers (4 of them
nullable, about 10% missing each), 4 integers, 2 booleans and 4 categories of 3 to 8 values
(one nullable), and a 3-class target drawn from a multinomial logit of 15 of them. It is
written as CSV; the default (scikit-learn) project is rendered, its own `schema infer` writes
the schema from that file, the file becomes its only training data (data/train/), as `make
data` does, and its own `train` fits the model (imputers, scaling and one-hot encoding, a
logistic regression) and its verified ONNX copy.

Ours serves it by default (the ONNX model in ONNX Runtime) and with MODEL_RUNTIME=native (the
scikit-learn pipeline), from its virtual environment as the peers are; and, unless
--skip-image, from its image: `docker build` of the project with the table as its training
data, which trains and bakes the model as `make build` does, run with `docker run` pinned to
the same core (its requests cross Docker's port mapping, which the others' do not). Its
requests are JSON records as a client sends them: numbers, whole numbers, true/false,
category strings and null for a missing value; the server parses and encodes them
(core/encoding.py). MLServer's scikit-learn runtime serves the same pipeline
(exported as joblib), by default and with adaptive batching; it takes a numeric tensor only,
so it is sent the rows already encoded by the project's own encoder: a V2 FP64 matrix, null
(NaN once decoded) for a missing value. That is less work than ours does, and the report says
so. Should MLServer fail on these rows, the report says how, in place of its figures.

The method is bench.py's: before any timing, ours must serve with the runtime each
configuration names, and every configuration must give the same labels and probabilities for
the bodies the load sends (within the ONNX check's tolerance); then each configuration runs
alone, pinned to one core with wrk on the other, rounds in a rotated order, a warm-up before
each point, medians over rounds. Results: results/<date>/mixed.json and mixed.md.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import urllib.error
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import image, report
from benchmarks.bench import (
    AGREEMENT_RTOL,
    FULL,
    ROWS_PER_REQUEST,
    SMOKE_ALL_POINTS,
    Plan,
    agreement_found,
    check_runtime,
    export_reference,
    install,
    measure_rounds,
    onnx_tolerance,
    probability_matrix,
    render_project,
    round_order,
    run_header,
    summarize,
    train_reference,
)
from benchmarks.frameworks import package_versions
from benchmarks.report import find, load_table
from benchmarks.run import (
    TAG_PREFIX,
    arguments,
    project_module,
    results_folder,
    training_features,
    write_results,
)
from benchmarks.servers import (
    MLSERVER_BATCHING,
    SERVER_CPU,
    Answer,
    Server,
    metadata_file,
    mlserver,
    ours,
)

# The data: a seeded synthetic table.
DATA_SEED = 20261127
DATA_ROWS = 5_000
DATA_FILE = "mixed.csv"
TARGET = "response"
CLASSES = ("none", "partial", "full")
NUMBERS = (
    "balance",
    "income",
    "debt_ratio",
    "utilisation",
    "tenure_years",
    "score_a",
    "score_b",
    "score_c",
    "latency_ms",
    "distance_km",
    "temperature",
    "discount_rate",
)
NULLABLE_NUMBERS = ("income", "debt_ratio", "score_b", "distance_km")
INTEGERS = ("visits", "items", "age", "support_calls")
BOOLEANS = ("is_member", "has_coupon")
CATEGORIES = {
    "plan": ("basic", "plus", "pro"),
    "region": ("north", "east", "south", "west"),
    "device": ("android", "ios", "web", "desktop", "tv"),
    "channel": ("ads", "direct", "email", "partner", "referral", "search", "social", "store"),
}
NULLABLE_CATEGORY = "device"
MISSING_SHARE = 0.10  # of each nullable feature's values
# The rows the requests carry are drawn with this seed from the table, as bench.py draws them.
ROWS_SEED = 0
# What each configuration is, as the report names it.
CONFIGURATIONS = {
    "ours-default": "ours, by default: the verified ONNX model in ONNX Runtime",
    "ours-native": "ours, MODEL_RUNTIME=native: the scikit-learn pipeline",
    "ours-image": "ours in its image (`docker run`), by default: ONNX Runtime",
    "mlserver-default": "MLServer's scikit-learn runtime, by default",
    "mlserver-best": "MLServer's scikit-learn runtime, adaptive batching",
}
MLSERVER_INPUT = (
    "MLServer is given pre-encoded numbers: its scikit-learn runtime takes a numeric tensor "
    "only, so each request carries the rows already encoded by the project's own encoder "
    "(core/encoding.py: booleans as 1/0, each category as its index among the schema's "
    "categories) as one V2 FP64 matrix, a missing value as null, which its NumPy codec "
    "decodes to NaN for the pipeline's imputers. That is less work than ours does: ours "
    "takes the raw JSON records (category strings, true/false, null) and parses, checks and "
    "encodes them against the schema on every request."
)


def synthetic_table(rows: int = DATA_ROWS, seed: int = DATA_SEED) -> pd.DataFrame:
    """The table: the features on scales of their own, the target drawn from a multinomial
    logit of 15 of them (Gumbel noise, so that the model is neither trivial nor hopeless),
    then about MISSING_SHARE of each nullable feature's values removed, at random."""
    rng = np.random.default_rng(seed)
    numbers = {
        "balance": rng.lognormal(8.0, 1.0, rows),
        "income": rng.lognormal(10.5, 0.5, rows),
        "debt_ratio": rng.beta(2.0, 5.0, rows),
        "utilisation": rng.uniform(0.0, 1.0, rows),
        "tenure_years": rng.gamma(2.0, 3.0, rows),
        "score_a": rng.normal(0.0, 1.0, rows),
        "score_b": rng.normal(50.0, 10.0, rows),
        "score_c": rng.normal(0.0, 5.0, rows),
        "latency_ms": rng.exponential(120.0, rows),
        "distance_km": rng.gamma(1.5, 10.0, rows),
        "temperature": rng.normal(15.0, 8.0, rows),
        "discount_rate": rng.uniform(0.0, 0.3, rows),
    }
    integers = {
        "visits": rng.poisson(6.0, rows),
        "items": rng.poisson(2.0, rows) + 1,
        "age": rng.integers(18, 81, rows),
        "support_calls": rng.poisson(1.0, rows),
    }
    booleans = {"is_member": rng.random(rows) < 0.4, "has_coupon": rng.random(rows) < 0.25}
    codes = {name: rng.integers(0, len(values), rows) for name, values in CATEGORIES.items()}

    def z(values: np.ndarray) -> np.ndarray:
        values = values.astype(np.float64)
        return (values - values.mean()) / values.std()

    partial = (
        0.9 * z(np.log(numbers["income"]))
        - 0.8 * z(numbers["debt_ratio"])
        + 0.7 * booleans["has_coupon"]
        + 0.5 * z(integers["visits"])
        + 0.4 * z(numbers["score_a"])
        + np.array([0.0, 0.6, 0.2])[codes["plan"]]
        + np.linspace(-0.6, 0.6, 8)[codes["channel"]]
        + 0.3 * z(numbers["discount_rate"])
    )
    full = (
        1.0 * z(numbers["score_b"])
        + 0.9 * booleans["is_member"]
        + 0.5 * z(numbers["tenure_years"])
        - 0.6 * z(integers["support_calls"])
        - 0.3 * z(integers["age"])
        + 0.4 * z(numbers["utilisation"])
        - 0.4 * z(np.log1p(numbers["distance_km"]))
        + np.array([-0.7, 0.2, 1.0])[codes["plan"]]
        + np.array([0.3, 0.0, -0.3, 0.1])[codes["region"]]
        + np.array([0.2, 0.5, 0.0, -0.2, -0.6])[codes["device"]]
        - 0.3
    )
    logits = np.stack([np.zeros(rows), partial, full], axis=1)
    target = np.array(CLASSES)[np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)]

    table: dict[str, Any] = {name: np.round(values, 4) for name, values in numbers.items()}
    for name in NULLABLE_NUMBERS:
        table[name] = np.where(rng.random(rows) < MISSING_SHARE, np.nan, table[name])
    table |= integers | booleans
    for name, values in CATEGORIES.items():
        labels = np.array(values, dtype=object)[codes[name]]
        if name == NULLABLE_CATEGORY:
            labels[rng.random(rows) < MISSING_SHARE] = None
        table[name] = labels
    table[TARGET] = target
    return pd.DataFrame(table)


def use_table(root: Path, project: Path, ours_server: Server) -> dict[str, Any]:
    """The table written as CSV and made the project's only training data (data/train/), its
    schema inferred by the project's own `schema infer` into the package's schema.yaml (and
    its first rows into data/sample.csv): what `make data` does, without the image, as the
    template's own-data tests do. It runs in the project's folder, so that what it prints
    names no path of this machine."""
    table = synthetic_table()
    train = project / "data" / "train"
    shutil.rmtree(train)
    train.mkdir()
    table.to_csv(train / DATA_FILE, index=False)
    [package] = [p.name for p in (project / "src").iterdir() if (p / "__init__.py").is_file()]
    command = [
        *(str(ours_server.venv(root) / "bin/python"), "-m", package, "schema", "infer"),
        *(f"data/train/{DATA_FILE}", "--target", TARGET, "--output", f"src/{package}/schema.yaml"),
        *("--sample", "data/sample.csv"),
    ]
    infer = subprocess.run(
        command,
        env={**os.environ, **ours_server.env},
        cwd=project,
        capture_output=True,
        text=True,
    )
    print(infer.stdout, end="", flush=True)
    if infer.returncode != 0:
        raise RuntimeError(f"schema infer failed:\n{infer.stdout}{infer.stderr}")
    return {
        "seed": DATA_SEED,
        "rows": len(table),
        "file": DATA_FILE,
        "csv_bytes": (train / DATA_FILE).stat().st_size,
        "schema_infer": infer.stdout.strip().splitlines(),
        "class_counts": {str(k): int(v) for k, v in table[TARGET].value_counts().items()},
        "missing_share": {
            name: round(float(table[name].isna().mean()), 4)
            for name in table.columns
            if table[name].isna().any()
        },
    }


def json_value(feature: Any, value: Any) -> Any:
    """A CSV cell, as pandas read it, as a client's JSON value for `feature`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if feature.type == "number":
        return float(value)
    if feature.type == "integer":
        return int(value)
    if feature.type == "boolean":
        return value.strip().lower() == "true" if isinstance(value, str) else bool(value)
    return str(value)


class Rows:
    """The rows the requests carry, drawn from the training file: JSON records as a client
    sends them, for ours, and the same rows encoded by the project's encoder, for MLServer.
    The 1-row body is a row with a missing value; the 100-row body, 100 different rows."""

    def __init__(self, project: Path) -> None:
        schema = project_module(project, "core.schema")
        self.encoding = project_module(project, "core.encoding")
        self.features = schema.FEATURES
        frame = pd.read_csv(project / "data" / "train" / DATA_FILE)
        columns = {
            f.name: [json_value(f, v) for v in frame[f.name].astype(object)] for f in self.features
        }
        records = [
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        ]
        order = list(np.random.default_rng(ROWS_SEED).permutation(len(records)))
        first = next(i for i in order if None in records[i].values())
        order.remove(first)
        self.order = [first, *order]
        self.records = records
        self.check_encoding(project)

    def __call__(self, root: Path, count: int) -> list[dict[str, Any]]:
        return [self.records[i] for i in self.order[:count]]

    def encoded(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The records as the model's float matrix: NaN for a missing value."""
        return np.array(
            [[self.encoding.encode_json(f, r[f.name]) for f in self.features] for r in records],
            dtype=np.float64,
        )

    def check_encoding(self, project: Path) -> None:
        """The encoded rows must be the very numbers training read from the file."""
        chosen = self.order[: max(ROWS_PER_REQUEST)]
        trained = training_features(project).to_numpy()[chosen]
        if not np.array_equal(self.encoded(self(Path(), len(chosen))), trained, equal_nan=True):
            raise RuntimeError("the encoded rows differ from the training data training read")

    def v2_body(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """MLServer's request: the encoded matrix, null for NaN (JSON has no NaN), both
        outputs asked for."""
        matrix = self.encoded(records)
        return {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(matrix.shape),
                    "datatype": "FP64",
                    "data": [[None if math.isnan(x) else x for x in row] for row in matrix],
                }
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }


@dataclass
class ContainerServer(Server):
    """Ours in its image: `command` is a `docker run` of the container `container`, which
    stopping removes too, should the container outlive its `docker run`."""

    container: str = ""

    def start(self, root: Path) -> None:
        subprocess.run(["docker", "rm", "-f", self.container], capture_output=True)
        super().start(root)

    def stop(self) -> None:
        super().stop()
        subprocess.run(["docker", "rm", "-f", self.container], capture_output=True)


def in_image(root: Path, project: Path, tag: str) -> ContainerServer:
    """Ours by default, served by the image `tag` in a container pinned to SERVER_CPU, its
    port 8080 published on 127.0.0.1 at the port the start picks; the versions it reports
    are its lock's, those of ours' environment."""
    server = ours(root, project, "image", {}, runtime="onnx")
    container = f"{tag.split(':')[0].replace('/', '-')}-bench"

    def run(port: int | str) -> list[str]:
        command = ["docker", "run", "--rm", "--name", container, "--cpuset-cpus", SERVER_CPU]
        return [*command, "-p", f"127.0.0.1:{port}:8080", "-e", "LOG_LEVEL=warning", tag]

    return ContainerServer(
        **{
            **{f.name: getattr(server, f.name) for f in fields(Server)},
            "settings": f"`{' '.join(run('PORT'))}`: the image `docker build --target runtime` built "
            "from the project with the table as its training data (the build trains and bakes "
            "the model, as `make build` does), all else its defaults; its requests cross "
            "Docker's port mapping",
            "command": lambda venv, work, port: run(port),
            "env": {},
            "port_env": lambda port: {},
            "environment": "ours",
        },
        container=container,
    )


def configurations(root: Path, project: Path, rows: Rows, tag: str | None) -> list[Server]:
    """Ours by default (the reference) and native, ours in its image (unless `tag` is None);
    MLServer by default and at its best, each fed the pre-encoded matrix."""
    return [
        ours(root, project, "default", {}, runtime="onnx"),
        ours(root, project, "native", {"MODEL_RUNTIME": "native"}, runtime="native"),
        *([in_image(root, project, tag)] if tag else []),
        *(
            replace(server, body=rows.v2_body, settings=f"{server.settings} {MLSERVER_INPUT}")
            for server in (
                mlserver(root, "default", {}),
                mlserver(root, "best", MLSERVER_BATCHING),
            )
        ),
    ]


def build_image(project: Path, tag: str) -> dict[str, Any]:
    """The project's image, `docker build --target runtime` (as `make build`): the build
    trains on data/train/, the table, and bakes that model in."""
    print(f"mixed: building {tag}", flush=True)
    return {"tag": tag, "build_s": round(image._build(project, tag), 1)}


def prepare(
    root: Path, tag: str | None
) -> tuple[list[Server], Rows, dict[str, Any], dict[str, Any] | None]:
    """Render the default project, give it the table, install every server, train with the
    project's `train`, export the model for MLServer, and build the image (unless `tag` is
    None)."""
    project = render_project(root)
    first = ours(root, project, "default", {})
    peer = mlserver(root, "default", {})
    install([first, peer], root)
    data = use_table(root, project, first)
    train_reference(first, root, project)
    export_reference(root, peer)
    built = build_image(project, tag) if tag else None
    rows = Rows(project)
    return configurations(root, project, rows, tag), rows, data, built


def failure(error: Exception) -> str:
    """Why a server could not answer, in a sentence: an HTTP error with its body."""
    if isinstance(error, urllib.error.HTTPError):
        body = error.read().decode(errors="replace").strip()
        return f"HTTP {error.code}: {body[:500]}"
    return f"{type(error).__name__}: {error}"[:800]


def check_agreement(configurations: list[Server], root: Path, rows: Rows) -> dict[str, Any]:
    """Each configuration, started alone, answers the bodies the load sends. Ours must serve
    with the runtime it names, and ours native and in its image must give the reference's
    (ours by default, ONNX Runtime) labels, and probabilities within AGREEMENT_RTOL or the
    ONNX check's absolute tolerance, matched by class name: RuntimeError otherwise. An
    MLServer configuration that fails or disagrees is recorded as such, and left out of the
    timing."""
    atol = onnx_tolerance(root)
    answers: dict[tuple[str, int], Answer] = {}
    runtimes: dict[str, str] = {}
    failed: dict[str, str] = {}
    problems: list[str] = []
    for server in configurations:
        try:
            server.start(root)
        except RuntimeError as error:
            if server.name == "ours":
                raise
            failed[server.key] = f"did not start: {error}"
            continue
        try:
            check_runtime(server, runtimes, problems)
            for count in ROWS_PER_REQUEST:
                try:
                    answers[server.key, count] = server.ask(rows(root, count))
                except (OSError, KeyError, ValueError) as error:
                    if server.name == "ours":
                        raise
                    failed[server.key] = f"{count} row(s): {failure(error)}"
                    break
        finally:
            server.stop()
    reference, native = configurations[0].key, configurations[1].key
    differences: dict[str, dict[str, float]] = {}
    from_native: dict[str, dict[str, float]] = {}
    for server in configurations:
        if server.key in failed:
            continue
        differences[server.key], from_native[server.key] = {}, {}
        for count in ROWS_PER_REQUEST:
            labels, probabilities = answers[server.key, count]
            for against, found in ((reference, differences), (native, from_native)):
                expected_labels, expected_probabilities = answers[against, count]
                classes = sorted(expected_probabilities[0])
                expected = probability_matrix(against, expected_probabilities, classes)
                given = probability_matrix(server.key, probabilities, classes)
                if labels != expected_labels or given.shape != expected.shape:
                    wrong = sum(a != b for a, b in zip(labels, expected_labels, strict=False))
                    disagreement = f"{count} row(s): {wrong} label(s) differ from {against}'s"
                elif not np.allclose(given, expected, rtol=AGREEMENT_RTOL, atol=atol):
                    disagreement = (
                        f"{count} row(s): probabilities differ from {against}'s by up to "
                        f"{float(np.abs(given - expected).max()):.3g}"
                    )
                else:
                    found[server.key][str(count)] = float(np.abs(given - expected).max())
                    continue
                if server.name == "ours":
                    problems.append(f"{server.key}, {disagreement}")
                else:
                    failed.setdefault(server.key, f"answers differently: {disagreement}")
    if problems:
        raise RuntimeError(f"ours disagrees with {reference}:\n  " + "\n  ".join(problems))
    for key, why in failed.items():
        differences.pop(key, None)
        from_native.pop(key, None)
        print(f"mixed: {key} left out of the timing: {why}", flush=True)
    print(f"mixed: the configurations agree with {reference} (atol {atol})", flush=True)
    return agreement_found(
        reference,
        atol,
        runtimes,
        differences,
        max_abs_probability_difference_from_native=from_native,
        failed=failed,
    )


def figures(load: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """The figures asked for, per configuration: single-row p50 at one connection, and rows/s
    with 100 rows per request, at each connection count measured."""
    found = []
    for key in keys:
        server, configuration = key.split("-", 1)
        single = find(load, server, configuration, rows=1, connections=1)
        row: dict[str, Any] = {
            "configuration": key,
            "single_row_p50_ms": single["p50_ms"] if single else None,
            "single_row_p99_ms": single["p99_ms"] if single else None,
        }
        for connections in sorted({r["connections"] for r in load}):
            hundred = find(load, server, configuration, rows=100, connections=connections)
            row[f"rows_per_s_100_rows_{connections}_connections"] = (
                hundred["requests_per_s"] * 100 if hundred else None
            )
        found.append(row)
    return found


def optional(value: float | None, spec: str) -> str:
    return "not measured" if value is None else f"{value:{spec}}"


def onnx_against_native(found: list[dict[str, Any]], connections: list[int]) -> list[str]:
    """Ours by default (ONNX Runtime) over ours native: single-row p50, 100-row rows/s."""
    by_key = {row["configuration"]: row for row in found}
    onnx, native = by_key.get("ours-default"), by_key.get("ours-native")
    if not onnx or not native or not onnx["single_row_p50_ms"] or not native["single_row_p50_ms"]:
        return []
    rates = ", ".join(
        f"{onnx[key] / native[key]:.2f}x at {c} connection{'s' if c > 1 else ''}"
        for c in connections
        if (key := f"rows_per_s_100_rows_{c}_connections") and onnx[key] and native[key]
    )
    return [
        f"ONNX Runtime against the native model (ours, same server): single-row p50 "
        f"{onnx['single_row_p50_ms']:.2f} against {native['single_row_p50_ms']:.2f} ms "
        f"({native['single_row_p50_ms'] / onnx['single_row_p50_ms']:.2f}x lower); 100-row "
        f"rows/s {rates}."
    ]


def figures_table(results: dict[str, Any]) -> list[str]:
    connections = sorted({r["connections"] for r in results["load"]})
    lines = [
        "## Figures",
        "",
        "| configuration | 1 row, 1 connection: p50 ms | p99 ms | "
        + " | ".join(f"100 rows, {c} connection{'s' if c > 1 else ''}: rows/s" for c in connections)
        + " |",
        "|---|---:|---:|" + "---:|" * len(connections),
    ]
    for row in results["figures"]:
        rates = " | ".join(
            optional(row[f"rows_per_s_100_rows_{c}_connections"], ",.0f") for c in connections
        )
        lines.append(
            f"| {CONFIGURATIONS.get(row['configuration'], row['configuration'])} | "
            f"{optional(row['single_row_p50_ms'], '.2f')} | "
            f"{optional(row['single_row_p99_ms'], '.2f')} | {rates} |"
        )
    for key in results["agreement"]["failed"]:
        lines.append(
            f"| {CONFIGURATIONS.get(key, key)} | failed | failed | "
            + " | ".join("failed" for _ in connections)
            + " |"
        )
    lines += ["", *onnx_against_native(results["figures"], connections), "", MLSERVER_INPUT]
    failed = results["agreement"]["failed"]
    if failed:
        lines += [
            "",
            "Left out of the timing, in place of their figures: "
            + "; ".join(f"**{key}** {why}" for key, why in failed.items())
            + ".",
        ]
    return lines


def data_section(results: dict[str, Any]) -> list[str]:
    data = results["data"]
    metrics = results["model"].get("metrics", {})
    shown = ", ".join(
        f"{name} {value:,}" if isinstance(value, int) else f"{name} {value:.3f}"
        for name, value in metrics.items()
        if isinstance(value, int | float)
    )
    check = results["model"]["onnx"]
    missing = ", ".join(f"{name} {share:.1%}" for name, share in data["missing_share"].items())
    classes = ", ".join(f"{name} {count:,}" for name, count in data["class_counts"].items())
    return [
        "## Data and model",
        "",
        f"A synthetic table, seeded ({data['seed']}), of {data['rows']:,} rows written as "
        f"CSV ({data['csv_bytes'] / 1e6:.2f} MB); the target `{TARGET}`: {classes}. Missing "
        f"values: {missing}. The project's own `schema infer` read it:",
        "",
        *(f"    {line}" for line in data["schema_infer"]),
        "",
        f"`train` fitted {results['model']['estimator']} on it (held-out metrics: "
        f"{shown or 'none reported'}). Training's ONNX check: {check.get('converter')} "
        f"{check.get('converter_version')}, verified: {check.get('verified')}, largest "
        f"probability difference from the native model {check.get('max_abs_difference', 0):.2g} "
        f"(tolerance {check.get('tolerance')}).",
        *(
            [
                "",
                f"Ours' image, {results['image']['tag']}: `docker build --target runtime` of "
                f"the project with the table as its training data took "
                f"{results['image']['build_s']:.0f} s (with the layer cache), its own `train` "
                "included: the model it baked is the one ours-image serves.",
            ]
            if "image" in results
            else []
        ),
    ]


def agreement_section(results: dict[str, Any]) -> list[str]:
    found = results["agreement"]

    def listed(by_key: dict[str, dict[str, float]]) -> str:
        return "; ".join(
            f"{key} "
            + ", ".join(
                f"{d:.1e} ({rows} row{'' if rows == '1' else 's'})" for rows, d in by_rows.items()
            )
            for key, by_rows in by_key.items()
        )

    return [
        "## Agreement",
        "",
        f"Before any timing, ours served with the runtime each configuration names "
        f"({', '.join(f'{k}: {v}' for k, v in found['runtimes'].items())}), and every "
        f"configuration timed answered {found['reference']}'s labels, and its class "
        f"probabilities within rtol {found['rtol']:g} or the ONNX check's absolute tolerance "
        f"{found['atol']:g}, for the bodies the load sends: "
        f"{' and '.join(str(r) for r in found['rows'])} rows (the single row has a missing "
        f"value; the 100 rows hold missing values and every type). Largest probability "
        f"difference from {found['reference']}: {listed(found['max_abs_probability_difference'])}. "
        f"From ours native: {listed(found['max_abs_probability_difference_from_native'])}.",
    ]


def method(results: dict[str, Any]) -> str:
    return (
        f"{report.method(results, 'mixed.json')} Ours' bodies are JSON records (`/predict`, "
        "labels and probabilities); MLServer's, the same rows pre-encoded as a V2 FP64 matrix "
        "(`infer`, outputs predict and predict_proba)."
    )


def markdown(results: dict[str, Any]) -> str:
    versions = "; ".join(
        f"{key}: " + ", ".join(f"{package} {version}" for package, version in packages.items())
        for key, packages in results["versions"].items()
    )
    lines = ["# A mixed-type table: ours beside MLServer, the same fitted pipeline", ""]
    if results["smoke"]:
        lines += ["**A smoke run: it proves the benchmark works; its figures mean nothing.**", ""]
    sections = [
        [*lines, method(results)],
        [f"Versions: {versions}."],
        figures_table(results),
        load_table(results),
        data_section(results),
        agreement_section(results),
        ["## Configurations", ""]
        + [f"- **{key}**: {settings}" for key, settings in results["configurations"].items()],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def model_summary(root: Path) -> dict[str, Any]:
    metadata = json.loads(metadata_file(root).read_text())
    settings = ", ".join(f"{k} {v}" for k, v in metadata.get("hyperparameters", {}).items())
    return {
        "estimator": f"the {metadata.get('framework', 'scikit-learn')} pipeline (imputers, "
        f"scaling and one-hot encoding, a logistic regression; {settings})",
        "metrics": metadata.get("metrics", {}),
        "onnx": metadata.get("onnx", {}),
    }


def main() -> int:
    parser = arguments(__doc__, "bench-mixed", "a short run: 2 rounds of 1 s, no warm-up")
    parser.add_argument("--skip-image", action="store_true", help="leave ours' image out")
    parser.add_argument(
        "--tag-prefix", default=TAG_PREFIX, help="of the image built: <prefix>mixed:latest"
    )
    args = parser.parse_args()

    plan: Plan = SMOKE_ALL_POINTS if args.smoke else FULL
    results: dict[str, Any] = {
        **run_header(plan, args.smoke),
        "connections": plan.connections,
        "rows": ROWS_PER_REQUEST,
    }
    tag = None if args.skip_image else f"{args.tag_prefix}mixed:latest"
    servers, rows, results["data"], built = prepare(args.root, tag)
    if built:
        results["image"] = built
    results["model"] = model_summary(args.root)
    packages = ("fastapi", "onnxruntime", "scikit-learn", "mlserver", "mlserver-sklearn")
    results["versions"] = {s.name: package_versions(s, args.root, packages) for s in servers}
    results["configurations"] = {s.key: s.settings for s in servers}
    results["agreement"] = check_agreement(servers, args.root, rows)
    timed = [s for s in servers if s.key not in results["agreement"]["failed"]]
    results["order"] = [[s.key for s in round_order(timed, r)] for r in range(plan.rounds)]
    results["measurements"] = measure_rounds(timed, plan, args.root, rows)
    results["load"] = summarize(results["measurements"])
    results["figures"] = figures(results["load"], [s.key for s in timed])
    folder = results_folder(args.results, args.root, args.smoke, results["date"])
    write_results(results, folder, "mixed", markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
