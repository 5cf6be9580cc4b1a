"""Fixtures shared by the unit tests: a model trained once, settings and an app client."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.config import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.serve.app import create_app
from {{ cookiecutter.package_name }}.train import train

from .docker_support import build_image, docker_client

EXAMPLE = {f.name: f.example for f in FEATURES}


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


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at a model trained once on the bundled sample."""
    settings = make_settings(tmp_path_factory.mktemp("trained"))
    train(settings)
    return settings


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
def image(docker: Any) -> str:
    """The image under test: $IMAGE if set, else built from this project once."""
    tag = os.environ.get("IMAGE")
    if tag:
        docker.images.get(tag)
        return tag
    tag = f"{PROJECT_NAME}:test"
    build_image(docker, tag)
    return tag


def wait_until_ready(test_client: TestClient) -> None:
    for _ in range(200):
        if test_client.get("/readyz").status_code == 200:
            return
        import time

        time.sleep(0.01)
    raise AssertionError(f"not ready: {test_client.get('/readyz').json()}")
