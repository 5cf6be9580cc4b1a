"""The servers under test, each in its own virtual environment, in each configuration measured.

A configuration is measured alone: its server runs pinned to SERVER_CPU while wrk runs on the
other core (load.py), the same for every server.
"""

import ast
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run import BENCHMARKS, free_ports, training_features

BENTOML_SERVICE = BENCHMARKS / "peers" / "bentoml_service.py"
SERVER_CPU = "0"
# Ports a server takes from the one start() picks: HTTP, then gRPC and metrics after it.
PORTS = 3
# Starts tried, each on newly picked ports, when the server finds its port taken.
STARTS = 3

Row = dict[str, float]
# What a server answered, read into one shape: a label and {class name: probability} per row.
Answer = tuple[list[str], list[dict[str, float]]]

# MLServer: what both its configurations set. debug=false turns its access log off.
MLSERVER_SETTINGS = {
    "parallel_workers": 0,
    "debug": False,
    "logging_settings": {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {"mlserver": {"level": "WARNING"}, "uvicorn": {"level": "WARNING"}},
    },
}
MLSERVER_BATCHING = {"max_batch_size": 64, "max_batch_time": 0.002}
MLSERVER_NOTES = (
    "parallel_workers=0 runs the model in the server process: the default, 1, crashes on the "
    'benchmark machine (its worker process fails with "There is no current event loop in '
    "thread 'MainThread'\"). Asked for both outputs, the scikit-learn runtime runs the "
    "pipeline twice (predict, then predict_proba): that is its behaviour, kept."
)


def metadata_file(root: Path) -> Path:
    return root / "model" / "metadata.json"


def feature_names(root: Path) -> list[str]:
    """The model's inputs as its metadata names them: the project's core/schema.py stays the
    one place that defines them."""
    return [f["name"] for f in json.loads(metadata_file(root).read_text())["features"]]


def rendered_project(root: Path) -> Path:
    """The project bench.render_project rendered under root/project."""
    [project] = [p for p in (root / "project").iterdir() if p.is_dir()]
    return project


def training_rows(root: Path, count: int) -> list[Row]:
    """`count` different rows of the project's training data (every class, as the data has
    them shuffled), the same on every call."""
    features = training_features(rendered_project(root))
    chosen = np.random.default_rng(0).permutation(len(features))[:count]
    names = feature_names(root)
    return [dict(zip(names, map(float, features.iloc[i][names]), strict=True)) for i in chosen]


def wait_until_ok(
    url: str, timeout: float, interval: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Return once GET `url` answers 200; RuntimeError after `timeout` s or once `alive()`
    turns false."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not alive():
            raise RuntimeError(f"the server behind {url} exited")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


@dataclass
class Server:
    """One server in one configuration: how to install, start, call and read it."""

    name: str
    configuration: str
    settings: str  # what this configuration sets, as the report states it
    requirements: Path
    ready_path: str
    predict_path: str
    body: Callable[[list[Row]], object]
    read_answer: Callable[[Any], Answer]
    # (venv, work, port) -> argv; port is the first of the PORTS that start() picked.
    command: Callable[[Path, Path, int], list[str]] = field(repr=False)
    env: dict[str, str] = field(default_factory=dict)
    # What the environment adds for the picked port.
    port_env: Callable[[int], dict[str, str]] = field(default=lambda port: {}, repr=False)
    port: int = 0  # while running, the port start() picked
    process: subprocess.Popen | None = None
    # The virtual environment's folder under venvs/ (default: the name): servers that share
    # one environment name the same one.
    environment: str = ""
    # Options of `pip install -r requirements`: --no-deps installs a complete frozen list as
    # it is, when a package's declared dependency is met by another distribution.
    pip_options: tuple[str, ...] = ()
    # The runtime ours must say it serves with (GET /metadata), checked before any timing:
    # "onnx" or "native"; None for a configuration whose runtime is not checked.
    runtime: str | None = None

    @property
    def key(self) -> str:
        return f"{self.name}-{self.configuration}"

    @property
    def predict_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.predict_path}"

    def venv(self, root: Path) -> Path:
        return root / "venvs" / (self.environment or self.name)

    def work(self, root: Path) -> Path:
        return root / "work" / self.key

    def install(self, root: Path) -> None:
        venv = self.venv(root)
        stamp = venv / ".installed"
        if stamp.exists() and stamp.read_text() == self.requirements.read_text():
            return
        print(f"bench: installing {self.name} into {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin/pip"),
                "install",
                "--quiet",
                *self.pip_options,
                "-r",
                str(self.requirements),
            ],
            check=True,
        )
        stamp.write_text(self.requirements.read_text())

    def start(self, root: Path) -> None:
        """Start on ports free now; should one be taken before the server binds it, start
        again on others, up to STARTS times."""
        work = self.work(root)
        work.mkdir(parents=True, exist_ok=True)
        log = root / f"{self.key}.log"
        for attempt in range(1, STARTS + 1):
            self.port = free_ports(PORTS)
            self.process = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *self.command(self.venv(root), work, self.port)],
                env={**os.environ, **self.env, **self.port_env(self.port)},
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                cwd=work,
                start_new_session=True,
            )
            try:
                wait_until_ok(
                    f"http://127.0.0.1:{self.port}{self.ready_path}",
                    120,
                    0.2,
                    self.running,
                )
                return
            except RuntimeError as error:
                self.stop()
                if attempt < STARTS and "address already in use" in log.read_text().lower():
                    print(f"bench: {self.key}: its port was taken; starting again", flush=True)
                    continue
                raise RuntimeError(f"{self.key}: {error}; see {log}") from None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.process = None

    def ask(self, rows: list[Row]) -> Answer:
        request = urllib.request.Request(
            self.predict_url,
            data=json.dumps(self.body(rows)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return self.read_answer(json.load(response))

    def served_runtime(self) -> str:
        """The runtime ours says serves the model: /metadata's runtime name."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/metadata", timeout=10
        ) as response:
            return str(json.load(response)["runtime"]["name"])


def read_predict_response(body: dict) -> Answer:
    """Ours, and BentoML's default service: {"predictions": [...], "probabilities": [...]}."""
    return body["predictions"], body["probabilities"]


def read_per_row_response(body: list[dict]) -> Answer:
    """BentoML's batchable service: one {"prediction", "probabilities"} object per row."""
    return [row["prediction"] for row in body], [row["probabilities"] for row in body]


BOTH_OUTPUTS = ("predict", "predict_proba")


def v2_body(root: Path, rows: list[Row], outputs: tuple[str, ...] = BOTH_OUTPUTS) -> dict:
    """A V2 inference request: the rows as a matrix in the model's feature order, `outputs`
    asked for (none: the runtime's default)."""
    names = feature_names(root)
    matrix = [[row[name] for name in names] for row in rows]
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(names)],
                "datatype": "FP64",
                "data": matrix,
            }
        ]
    }
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def exported_classes(root: Path) -> list[str]:
    """The class names in the column order of the peers' probabilities, as the export wrote
    them."""
    return json.loads((root / "model.classes.json").read_text())


def v2_outputs(body: dict) -> dict[str, list]:
    """A V2 answer's outputs, {name: flat data}."""
    return {output["name"]: output["data"] for output in body["outputs"]}


def probability_rows(classes: list[str], flat: list[float]) -> list[dict[str, float]]:
    """A flat row-major probability matrix as {class name: probability} per row."""
    return [
        dict(zip(classes, flat[i : i + len(classes)], strict=True))
        for i in range(0, len(flat), len(classes))
    ]


def read_v2_response(root: Path, body: dict) -> Answer:
    """V2 outputs: probability columns follow the exported model's `classes_`."""
    outputs = v2_outputs(body)
    return outputs["predict"], probability_rows(exported_classes(root), outputs["predict_proba"])


@dataclass(frozen=True)
class MLServerRuntime:
    """One of MLServer's runtimes: the model file it serves (under the work folder), the
    environment it runs in, the outputs asked for and how its answer reads."""

    implementation: str
    model_file: str
    requirements: Path
    outputs: tuple[str, ...]
    read_answer: Callable[[Path, dict], Answer]
    notes: str
    pip_options: tuple[str, ...] = ()


SKLEARN_RUNTIME = MLServerRuntime(
    "mlserver_sklearn.SKLearnModel",
    "model.joblib",
    BENCHMARKS / "requirements-mlserver.txt",
    BOTH_OUTPUTS,
    read_v2_response,
    MLSERVER_NOTES,
)


def ours(
    root: Path,
    project: Path,
    configuration: str,
    env: dict[str, str],
    runtime: str | None = None,
) -> Server:
    """The project's `serve` with `env` set; `runtime`, when given, is the runtime it must
    serve with."""
    env = {"LOG_LEVEL": "warning", **env}
    return Server(
        "ours",
        configuration,
        " ".join(f"{name}={value}" for name, value in env.items())
        + " (no access log at that level; all else the project's defaults)",
        project / "requirements.lock",
        "/readyz",
        "/predict",
        lambda rows: rows,
        read_predict_response,
        lambda venv, work, port: [str(venv / "bin/python"), "-m", "iris_classifier", "serve"],
        env={
            **env,
            "HOST": "127.0.0.1",
            "MODEL_DIR": str(root / "model"),
            "PYTHONPATH": str(project / "src"),
        },
        port_env=lambda port: {"PORT": str(port), "GRPC_PORT": str(port + 1)},
        runtime=runtime,
    )


def mlserver(
    root: Path,
    configuration: str,
    batching: dict[str, float],
    runtime: MLServerRuntime = SKLEARN_RUNTIME,
) -> Server:
    def command(venv: Path, work: Path, port: int) -> list[str]:
        settings = {
            **MLSERVER_SETTINGS,
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": port + 1,
            "metrics_port": port + 2,
        }
        (work / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": "iris",
            "implementation": runtime.implementation,
            "parameters": {"uri": str(root / runtime.model_file), "version": "v1"},
            **batching,
        }
        (work / "iris").mkdir(exist_ok=True)
        (work / "iris" / "model-settings.json").write_text(json.dumps(model_settings))
        return [str(venv / "bin/mlserver"), "start", str(work)]

    return Server(
        "mlserver",
        configuration,
        f"settings.json {json.dumps(MLSERVER_SETTINGS)}; model-settings.json "
        f"{json.dumps(batching) if batching else 'without batching (the default)'}. "
        + runtime.notes,
        runtime.requirements,
        "/v2/health/ready",
        "/v2/models/iris/infer",
        lambda rows: v2_body(root, rows, runtime.outputs),
        lambda body: runtime.read_answer(root, body),
        command,
        pip_options=runtime.pip_options,
    )


def bentoml_decorators(service: str) -> str:
    """The decorators of `service` and of its methods in peers/bentoml_service.py: exactly
    what that configuration sets."""
    source = BENTOML_SERVICE.read_text()
    found = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and node.name == service
    )
    methods = [node for node in found.body if isinstance(node, ast.FunctionDef)]
    return "; ".join(
        f"@{ast.get_source_segment(source, decorator)}"
        for node in [found, *methods]
        for decorator in node.decorator_list
    )


def bentoml(
    root: Path, configuration: str, service: str, read_answer: Callable[[Any], Answer]
) -> Server:
    def command(venv: Path, work: Path, port: int) -> list[str]:
        (work / "service.py").write_text(BENTOML_SERVICE.read_text())
        return [
            str(venv / "bin/bentoml"),
            "serve",
            f"service:{service}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]

    return Server(
        "bentoml",
        configuration,
        f"{BENTOML_SERVICE.name}, class {service}: {bentoml_decorators(service)}. BentoML has "
        "no warning level: its logger stays at INFO, which logs nothing per request once the "
        "access log is off.",
        BENCHMARKS / "requirements-bentoml.txt",
        "/readyz",
        "/predict",
        lambda rows: {"rows": rows},
        read_answer,
        command,
        env={
            "BENCH_MODEL_FILE": str(root / "model.joblib"),
            "BENCH_MODEL_METADATA": str(metadata_file(root)),
            "BENTOML_DO_NOT_TRACK": "true",
            "BENTOML_HOME": str(root / "bentoml-home"),
        },
    )


def servers(root: Path, project: Path) -> list[Server]:
    """Every configuration measured; the first, ours by default, is the reference. Ours by
    default serves the verified ONNX model in ONNX Runtime (MODEL_RUNTIME=auto); ours native
    serves the same model with scikit-learn, as the peers do."""
    return [
        ours(root, project, "default", {}, runtime="onnx"),
        ours(root, project, "batching-off", {"BATCHING": "false"}, runtime="onnx"),
        ours(root, project, "native", {"MODEL_RUNTIME": "native"}, runtime="native"),
        mlserver(root, "default", {}),
        mlserver(root, "best", MLSERVER_BATCHING),
        bentoml(root, "default", "IrisClassifier", read_predict_response),
        bentoml(root, "best", "IrisClassifierBatching", read_per_row_response),
    ]
