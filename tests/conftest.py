"""Shared fixtures of the template's tests: Docker, and renders of the template."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"project_slug": "iris-classifier", "package_name": "iris_classifier"}


def docker_client() -> Any:
    """A Docker SDK client; skips without an engine, fails instead under REQUIRE_DOCKER=1."""
    import docker

    try:
        client = docker.from_env(version="auto", timeout=600)
        client.ping()
    except Exception as error:
        message = f"no Docker Engine answers ({error})"
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"{message}, and REQUIRE_DOCKER=1 forbids skipping container tests")
        pytest.skip(message)
    return client


@pytest.fixture(scope="session")
def docker() -> Any:
    return docker_client()


def render(output_dir: Path, **context: str) -> Path:
    """Render the template without prompts; returns the project folder."""
    return Path(
        cookiecutter(str(ROOT), no_input=True, output_dir=str(output_dir), extra_context=context)
    )


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("default"))


def run_in(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 1800
) -> subprocess.CompletedProcess[str]:
    """Run a command in a rendered project with this interpreter's environment."""
    return subprocess.run(
        [*args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


PYTHON = sys.executable
