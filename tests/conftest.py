"""Shared fixtures of the template's tests: Docker, and renders of the template."""

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"project_slug": "iris-classifier", "package_name": "iris_classifier"}


def load_docker_support() -> ModuleType:
    """The generated project's Docker helper (it has no template fields), so that the
    template's tests and the generated ones share one way to reach the engine."""
    path = ROOT / "{{cookiecutter.project_slug}}/tests/docker_support.py"
    spec = importlib.util.spec_from_file_location("generated_docker_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docker_support = load_docker_support()


@pytest.fixture(scope="session")
def docker() -> Any:
    """A Docker SDK client; skips without an engine, fails instead under REQUIRE_DOCKER=1.
    Every test that needs the engine asks for it, directly, through another fixture or with
    `@pytest.mark.usefixtures("docker")`: that is what marks it `docker` (below)."""
    return docker_support.docker_client()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "docker: needs a Docker Engine; set on every test that uses the `docker` fixture "
        "(`make test-fast` runs the others)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `docker` every test whose fixtures reach the engine, however indirectly (`build`,
    an image's fixture, an autouse one), so that the fast tier (`-m "not docker"`) cannot take
    in a container test by mistake."""
    for item in items:
        if "docker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


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
# The generated project's unit tests, as its `make test` runs them.
UNIT_TESTS = ["-m", "pytest", "-q", "-m", "not container", "-p", "no:cacheprovider"]


# --- images -------------------------------------------------------------------------------

Build = Callable[..., tuple[Path, str]]


def on_worker(version: str) -> pytest.MarkDecorator:
    return pytest.mark.xdist_group(f"image-{version}")


# Frameworks whose locked packages come from an index besides PyPI (PyTorch's CPU wheels),
# which a test machine may not reach: their images install from the wheelhouse that the
# project's `make wheelhouse` fills with this machine's pip.
FROM_WHEELHOUSE = {"pytorch"}


@pytest.fixture(scope="session")
def build(docker: Any, tmp_path_factory: pytest.TempPathFactory) -> Build:
    """Render and build a project once per (python_version, BASE_IMAGE, framework, target):
    the full image (`runtime`) or the slim serving image (`serve`); returns the project
    folder and the image tag."""
    built: dict[tuple[str, str, str, str], tuple[Path, str]] = {}

    def build_once(
        python_version: str,
        base_image: str = "",
        framework: str = "sklearn",
        target: str = "runtime",
    ) -> tuple[Path, str]:
        key = (python_version, base_image, framework, target)
        if key not in built:
            project = render(
                tmp_path_factory.mktemp("image"),
                python_version=python_version,
                framework=framework,
            )
            tag = f"iris-classifier:template-test-py{python_version}"
            if framework != "sklearn":
                tag += f"-{framework}"
            if base_image:
                tag += "-on-" + base_image.replace(":", "-")
            if target != "runtime":
                tag += f"-{target}"
            if framework in FROM_WHEELHOUSE:
                wheelhouse = run_in(project, "make", "wheelhouse", "EXTRA_INDEX_URL=")
                assert wheelhouse.returncode == 0, wheelhouse.stdout + wheelhouse.stderr
            args = {"BASE_IMAGE": base_image} if base_image else {}
            docker.images.build(
                path=str(project), tag=tag, buildargs=args, target=target, rm=True, forcerm=True
            )
            built[key] = (project, tag)
        return built[key]

    return build_once
