"""Training publishes to a real MLflow tracking server (the `mlflow` package's server, SQLite
backend, local artifact store, started here): a run with the hyperparameters, the metrics and
the artifact's files, a new version of the registered model, and the alias moved only when
the new model is no worse. `predict` and the servers of both images, the slim one included
(no MLflow client in it), then take the model from the registry (models:/NAME@ALIAS,
models:/NAME/VERSION, runs:/RUN/model)."""

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from .conftest import (
    ROOT,
    Build,
    docker_support,
    on_worker,
    project_command,
    project_module,
    serving_on_host,
)

MLFLOW = ROOT / "build" / "tools" / "mlflow" / "bin" / "mlflow"
ALIAS = "champion"


@dataclass(frozen=True)
class Server:
    url: str
    client: MlflowClient


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """MLflow's tracking server on a free port of 127.0.0.1, serving its artifacts."""
    if not MLFLOW.exists():
        pytest.fail(f"no MLflow server at {MLFLOW}: run `make mlflow-server`")
    folder = tmp_path_factory.mktemp("mlflow")
    port = docker_support.free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(MLFLOW),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        docker_support.wait_for(f"{url}/health", timeout=120)
        yield Server(url, MlflowClient(tracking_uri=url))
    finally:
        server.terminate()
        server.wait(20)


def train(project: Path, model_dir: Path, server: Server, **env: str) -> str:
    """`train` with the project's data, publishing to the server; its log."""
    registry = {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_ALIAS": ALIAS}
    run = train_command(project, model_dir, **{**registry, **env})
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def train_command(project: Path, model_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    data = str(project / "data" / "train")
    return project_command(
        project, "train", env={"MODEL_DIR": str(model_dir), "TRAINING_DATA_DIR": data, **env}
    )


def predict(project: Path, out: Path, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    sample = str(project / "data" / "sample.csv")
    return project_command(
        project,
        "predict",
        "--input",
        sample,
        "--output",
        str(out),
        env={"MODEL_CACHE_DIR": str(cache), **env},
    )


def digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` but hidden ones, by relative path: its SHA-256."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(folder).parts)
    }


def headline(project: Path) -> str:
    return str(project_module(project, "training.publish").headline().name)


def test_training_publishes_a_run_a_version_and_moves_the_alias_only_when_no_worse(
    default_project: Path, mlflow_server: Server, tmp_path: Path
) -> None:
    project, client = default_project, mlflow_server.client
    name = project.name
    model_dir = tmp_path / "model"
    # A user and password in the URI (the server ignores them): never in the log.
    with_credentials = mlflow_server.url.replace("http://", "http://trainer:pa55word@")
    run = train_command(
        project, model_dir, MLFLOW_TRACKING_URI=with_credentials, MLFLOW_ALIAS=ALIAS
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pa55word" not in run.stdout + run.stderr and "trainer" not in run.stdout
    log = run.stdout
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert f"as {name} version 1; alias {ALIAS} moved to it" in log, log

    first = client.get_model_version_by_alias(name, ALIAS)
    assert first.version == "1"
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {k: float(v) for k, v in metadata["metrics"].items()}
    assert run.data.params == {k: str(v) for k, v in metadata["hyperparameters"].items()}
    assert run.data.tags["model_version"] == metadata["model_version"]
    # The same files as on disk, byte for byte.
    fetched = Path(client.download_artifacts(first.run_id, "model", str(tmp_path / "fetched")))
    assert digests(fetched) == digests(model_dir) and "metadata.json" in digests(fetched)

    # The same data and seed: the same metrics, no worse, so the alias moves.
    log = train(project, model_dir, mlflow_server)
    assert f"as {name} version 2; alias {ALIAS} moved to it" in log, log
    second = client.get_model_version_by_alias(name, ALIAS)
    assert second.version == "2"

    # Once the alias's model has a better figure than any new one can reach, it stays.
    rule = headline(project)
    unbeatable = 2.0 if rule == "f1_macro" else -1.0
    client.log_metric(second.run_id, rule, unbeatable)
    log = train(project, model_dir, mlflow_server)
    assert f"as {name} version 3; alias {ALIAS} stays on version 2" in log, log
    assert client.get_model_version_by_alias(name, ALIAS).version == "2"
    assert client.get_model_version(name, "3").run_id != second.run_id

    # Without an alias, a version and nothing more.
    log = train(project, model_dir, mlflow_server, MLFLOW_ALIAS="")
    assert f"as {name} version 4" in log and "alias" not in log.split("published")[1], log


def test_predict_takes_the_model_from_the_registry_and_names_a_missing_one(
    default_project: Path, mlflow_server: Server, tmp_path: Path
) -> None:
    project, client = default_project, mlflow_server.client
    name = project.name
    model_dir = tmp_path / "model"
    train(project, model_dir, mlflow_server, MLFLOW_MODEL_NAME=f"{name}-predict")
    version = client.get_model_version_by_alias(f"{name}-predict", ALIAS)
    local = predict(project, tmp_path / "local.csv", tmp_path / "cache", MODEL_DIR=str(model_dir))
    assert local.returncode == 0, local.stderr
    expected = pd.read_csv(tmp_path / "local.csv")

    registry = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    for uri in (
        f"models:/{name}-predict@{ALIAS}",
        f"models:/{name}-predict/{version.version}",
        f"runs:/{version.run_id}/model",
    ):
        out = tmp_path / f"{uri.split(':')[0]}-{len(uri)}.csv"
        run = predict(project, out, tmp_path / "cache", MODEL_URI=uri, **registry)
        assert run.returncode == 0, run.stderr
        pd.testing.assert_frame_equal(pd.read_csv(out), expected)
    cached = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(cached) == 2  # the alias and the version share one folder; the run has its own

    for uri, problem in {
        f"models:/{name}-predict/99": "version=99) not found",
        f"models:/{name}-predict@nobody": "alias nobody not found",
        "models:/no-such-model/1": "(name=no-such-model, version=1) not found",
        f"models:/{name}-predict/latest": "models:/NAME/VERSION (a number)",
    }.items():
        run = predict(
            project, tmp_path / "never.csv", tmp_path / "cache", MODEL_URI=uri, **registry
        )
        assert run.returncode == 1, run.stdout + run.stderr
        [line] = run.stderr.strip().splitlines()
        assert uri in line and problem in line, line
        assert not (tmp_path / "never.csv").exists()

    unset = predict(
        project, tmp_path / "never.csv", tmp_path / "cache", MODEL_URI=f"models:/{name}/1"
    )
    assert unset.returncode == 1 and "set MLFLOW_TRACKING_URI" in unset.stderr, unset.stderr


def test_a_server_that_is_down_fails_training_but_keeps_the_model(
    default_project: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    run = train_command(
        default_project,
        model_dir,
        MLFLOW_TRACKING_URI=f"http://user:secret@127.0.0.1:{docker_support.free_port()}",
    )
    assert run.returncode == 1, run.stdout + run.stderr
    [line] = run.stderr.strip().splitlines()
    assert "publishing failed" in line and "secret" not in run.stdout + run.stderr, line
    assert (model_dir / "metadata.json").is_file()


@on_worker("3.11")
@pytest.mark.parametrize("target", ["runtime", "serve"])  # the full image, the slim one
def test_the_images_serve_the_alias_from_the_registry(
    docker: Any, build: Build, mlflow_server: Server, tmp_path: Path, target: str
) -> None:
    project, image = build("3.11", target=target)
    name = f"{project.name}-{target}"
    model_dir = tmp_path / "model"
    train(project, model_dir, mlflow_server, MLFLOW_MODEL_NAME=name)
    version = mlflow_server.client.get_model_version_by_alias(name, ALIAS)
    env = {"MODEL_URI": f"models:/{name}@{ALIAS}", "MLFLOW_TRACKING_URI": mlflow_server.url}
    with serving_on_host(docker, image, env) as (url, _started, _container):
        docker_support.wait_for(f"{url}/readyz", timeout=120)
        metadata = httpx.get(f"{url}/metadata").json()
        assert metadata["source"] == f"models:/{name}@{ALIAS}"
        expected = json.loads((model_dir / "metadata.json").read_text())["model_version"]
        assert metadata["model"]["model_version"] == expected
        run = mlflow_server.client.get_run(version.run_id)
        assert run.data.tags["model_version"] == expected
        row = pd.read_csv(project / "data" / "sample.csv").head(3).to_dict("records")
        answer = httpx.post(f"{url}/predict", json=row)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3
