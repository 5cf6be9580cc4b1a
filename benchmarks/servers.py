"""The three servers under test, each in its own virtual environment, one process each."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE_ROW = [6.3, 2.9, 5.6, 1.8]


def metadata_file(root: Path) -> Path:
    return root / "model" / "metadata.json"


def feature_names(root: Path) -> list[str]:
    """The model's inputs as its metadata names them: the project's features.py stays the
    one place that defines them."""
    return [f["name"] for f in json.loads(metadata_file(root).read_text())["features"]]


def records(root: Path, rows: int) -> list[dict[str, float]]:
    return [dict(zip(feature_names(root), SAMPLE_ROW, strict=True)) for _ in range(rows)]


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


def v2_body(rows: int, outputs: bool) -> dict:
    body: dict = {
        "inputs": [
            {"name": "input-0", "shape": [rows, 4], "datatype": "FP64", "data": [SAMPLE_ROW] * rows}
        ]
    }
    if outputs:
        body["outputs"] = [{"name": "predict"}, {"name": "predict_proba"}]
    return body


@dataclass
class Server:
    """How to install, start and call one server."""

    name: str
    requirements: Path
    ready_path: str
    predict_path: str
    body: Callable[[int], object]
    command: Callable[["Server", Path, int], list[str]] = field(repr=False)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def venv(self, root: Path) -> Path:
        return root / "venvs" / self.name

    def install(self, root: Path) -> None:
        venv = self.venv(root)
        stamp = venv / ".installed"
        if stamp.exists() and stamp.read_text() == self.requirements.read_text():
            return
        print(f"bench: installing {self.name} into {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin/pip"), "install", "--quiet", "-r", str(self.requirements)], check=True
        )
        stamp.write_text(self.requirements.read_text())

    def start(self, root: Path, port: int, log: Path) -> None:
        env = {**os.environ, **self.env, "PORT": str(port)}
        self.process = subprocess.Popen(
            self.command(self, root, port), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            cwd=root / "work" / self.name, start_new_session=True,
        )  # fmt: skip
        process = self.process
        try:
            wait_until_ok(
                f"http://127.0.0.1:{port}{self.ready_path}",
                120,
                0.2,
                lambda: process.poll() is None,
            )
        except RuntimeError as error:
            raise RuntimeError(f"{self.name}: {error}; see {log}") from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        self.process = None

    def call(self, port: int, rows: int) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{self.predict_path}",
            data=json.dumps(self.body(rows)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def _ours(server: Server, root: Path, port: int) -> list[str]:
    return [str(server.venv(root) / "bin/python"), "-m", "iris_classifier", "serve"]


def _mlserver(server: Server, root: Path, port: int) -> list[str]:
    work = root / "work" / server.name
    (work / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": port + 1,
                "metrics_port": port + 2,
                "parallel_workers": 0,
                "debug": False,
            }
        )
    )
    model = work / "iris"
    model.mkdir(exist_ok=True)
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(root / "model.joblib"), "version": "v1"},
            }
        )
    )
    return [str(server.venv(root) / "bin/mlserver"), "start", str(work)]


def _bentoml(server: Server, root: Path, port: int) -> list[str]:
    work = root / "work" / server.name
    (work / "service.py").write_text((HERE / "peers/bentoml_service.py").read_text())
    return [
        str(server.venv(root) / "bin/bentoml"), "serve", "service:IrisClassifier",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def servers(root: Path, project: Path) -> list[Server]:
    model_env = {
        "BENCH_MODEL_FILE": str(root / "model.joblib"),
        "BENCH_MODEL_METADATA": str(metadata_file(root)),
    }
    return [
        Server(
            "ours", project / "requirements.lock", "/readyz", "/predict",
            lambda rows: records(root, rows), _ours,
            env={"MODEL_DIR": str(root / "model"), "PYTHONPATH": str(project / "src")},
        ),
        Server(
            "mlserver", HERE / "requirements-mlserver.txt", "/v2/health/ready",
            "/v2/models/iris/infer", lambda rows: v2_body(rows, outputs=True), _mlserver,
        ),
        Server(
            "bentoml", HERE / "requirements-bentoml.txt", "/readyz", "/predict",
            lambda rows: {"rows": records(root, rows)}, _bentoml,
            env={**model_env, "BENTOML_DO_NOT_TRACK": "true", "BENTOML_HOME": str(root / "bentoml-home")},
        ),
    ]  # fmt: skip
