"""Fixtures shared by the unit tests: a model trained once, settings, an app client, a live
server, and checks that every prediction body must pass."""

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.core.artifact import METADATA_FILE
from {{ cookiecutter.package_name }}.core.model import build_model, library_versions
from {{ cookiecutter.package_name }}.core.schema import FEATURES, load_sample
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve.app import create_app
from {{ cookiecutter.package_name }}.training.train import (
    DEFAULT_HYPERPARAMETERS,
    train,
)

from .docker_support import (
    MODEL_MOUNT,
    bind,
    build_image,
    docker_client,
    free_port,
    run_job,
    shared_dir,
)

EXAMPLE = {f.name: f.example for f in FEATURES}

# Settings come from environment variables. The machine's own (a developer's PORT, a CI
# job's API_TOKEN or BATCHING) must not change what the tests see: tests that want one set
# it themselves with monkeypatch.
for _name in list(os.environ):
    if _name.lower() in Settings.model_fields:
        del os.environ[_name]


class OverflowingModel:
    """A trained model whose probabilities are NaN for rows holding a value beyond 1e300,
    as a linear model's arithmetic overflows on them. Whatever the framework, the server must
    refuse such rows, not answer NaN."""

    def __init__(self, model: Any) -> None:
        self.model, self.classes_ = model, model.classes_

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        probabilities = np.array(self.model.predict_proba(matrix), dtype=np.float64)
        probabilities[(np.abs(matrix) > 1e300).any(axis=1)] = np.nan
        return probabilities


def training_libraries() -> set[str]:
    """Import names of the libraries that train: the framework's (core/model.py) and
    scikit-learn's (the held-out split and the metrics)."""
    distributions = {*library_versions(), "scikit-learn"}
    return {name for name, owners in packages_distributions().items() if distributions & {*owners}}


def make_settings(root: Path, **overrides: object) -> Settings:
    """Settings whose every path lies under `root`, so tests never touch /opt/ml."""
    values: dict[str, object] = {
        "model_dir": root / "model",
        "training_data_dir": root / "input" / "data" / "train",
        "hyperparameters_file": root / "input" / "config" / "hyperparameters.json",
        "failure_file": root / "output" / "failure",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def fitted(**hyperparameters: object) -> Any:
    """A model fitted on the whole sample, with the default hyperparameters but these."""
    features, target = load_sample()
    model = build_model({**DEFAULT_HYPERPARAMETERS, **hyperparameters})
    model.fit(features.to_numpy(), target.to_numpy())
    return model


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at a model trained once on the bundled sample."""
    settings = make_settings(tmp_path_factory.mktemp("trained"))
    train(settings)
    return settings


@pytest.fixture
def copied(trained: Settings, tmp_path: Path) -> Path:
    """A copy of the trained artifact, free to damage."""
    return Path(shutil.copytree(trained.model_dir, tmp_path / "model"))


def edit_metadata(model_dir: Path, **changes: object) -> None:
    path = model_dir / METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.fixture
def client(trained: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(trained)) as test_client:
        wait_until_ready(test_client)
        yield test_client


# --- container tests: one Docker client and one image per session ----------------------


@pytest.fixture(scope="session")
def docker() -> Any:
    return docker_client()


@pytest.fixture(scope="session")
def training_image(docker: Any) -> str:
    """The full image, which trains: $TRAINING_IMAGE, else $IMAGE when that is not the serving
    image, else built from this project once."""
    tag = os.environ.get("TRAINING_IMAGE") or (
        None if os.environ.get("IMAGE_TARGET") == "serve" else os.environ.get("IMAGE")
    )
    if tag:
        docker.images.get(tag)
        return tag
    tag = f"{PROJECT_NAME}:test"
    build_image(docker, tag)
    return tag


@pytest.fixture(scope="session")
def image(docker: Any, training_image: str) -> str:
    """The image under test: $IMAGE if set, else built from this project once: the full
    image, or the slim serving image when IMAGE_TARGET=serve. The full image runs the tests
    `-m "container and not serving_image"`, the serving image `-m "container and not
    full_image"` (`make test-container`, `make test-container-serve`)."""
    tag = os.environ.get("IMAGE")
    if tag:
        docker.images.get(tag)
        return tag
    if os.environ.get("IMAGE_TARGET") != "serve":
        return training_image
    tag = f"{PROJECT_NAME}:test-serve"
    build_image(docker, tag, target="serve")
    return tag


@pytest.fixture(scope="session")
def mounted_model(
    docker: Any, training_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A model trained by the full image's `train` job into a mounted folder."""
    model_dir = shared_dir(tmp_path_factory.mktemp("mounted") / "model")
    config = shared_dir(tmp_path_factory.mktemp("config"))
    (config / "hyperparameters.json").write_text(
        json.dumps({"model_version": "mounted-1", "test_size": "0.3"})
    )
    code, logs = run_job(
        docker,
        training_image,
        ["train"],
        volumes={**bind(model_dir, MODEL_MOUNT), **bind(config, "/opt/ml/input/config", "ro")},
    )
    assert code == 0, logs
    assert "held-out accuracy" in logs
    return model_dir


def wait_until_ready(test_client: TestClient) -> None:
    for _ in range(200):
        if test_client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready: {test_client.get('/readyz').json()}")


@contextmanager
def live_server(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    """The app under a real uvicorn on a free 127.0.0.1 port, in a thread; yields its URL
    and the app, once it is ready."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started or httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        yield url, app
    finally:
        server.should_exit = True
        thread.join(30)


def metric(text: str, name: str, /, absent: float | None = None, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition: `absent` if there is none,
    and if that is None, the test fails."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    if absent is None:
        raise AssertionError(f"no sample {name}{labels} in the metrics")
    return absent


def assert_consistent(labels: Sequence[str], probabilities: Sequence[Mapping[str, float]]) -> None:
    """Each row's label is its most probable class, and its probabilities sum to 1."""
    assert len(labels) == len(probabilities) > 0
    for label, row in zip(labels, probabilities, strict=True):
        assert label == max(row, key=row.__getitem__), (label, row)
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 <= p <= 1.0 for p in row.values())


def varied_rows(step: int = 7) -> list[dict[str, float]]:
    """Rows of the bundled sample from every class, as request records."""
    features = load_sample()[0].iloc[::step]
    return [
        {name: float(value) for name, value in row.items()}
        for row in features.to_dict(orient="records")
    ]


def v2_probabilities(output: Mapping[str, Any], classes: Sequence[str]) -> list[dict[str, float]]:
    """A V2 `predict_proba` output as one {class: probability} mapping per row."""
    matrix = np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])
    return [dict(zip(classes, row, strict=True)) for row in matrix.tolist()]


def v2_body(rows: Sequence[Sequence[float]]) -> dict[str, Any]:
    """A V2 inference request with the rows as one [N, features] tensor."""
    tensor = {"name": "input-0", "shape": [len(rows), len(FEATURES)], "datatype": "FP64"}
    return {"inputs": [{**tensor, "data": [list(row) for row in rows]}]}
