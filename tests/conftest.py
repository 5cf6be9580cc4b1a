"""Shared fixtures of the template's tests: Docker, renders of the template, and a rendered
project's data schema and training data."""

import contextlib
import importlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from cookiecutter.main import cookiecutter

from .s3_server import BUCKET, moto_server, store

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


# --- the rendered project's data ----------------------------------------------------------


def project_module(project: Path, module: str) -> ModuleType:
    """A module of the rendered project's package (e.g. "core.schema"), imported from its src/.
    Python imports a package once: every render of the template holds the same schema and
    training data, so the first render a test imports serves the later ones too."""
    src = project / "src"
    package = package_of(project)
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return importlib.import_module(f"{package}.{module}")


@dataclass(frozen=True)
class ProjectData:
    """A rendered project's data schema and its bundled training data (data/train/), as the
    project's own code reads them. The template's tests take every column, class and value
    they send or expect from here: replace the data and its schema, and they follow."""

    target: str
    classes: list[str]
    # One request record: each feature's example value from the schema.
    example: dict[str, Any]
    # The training data's features, one column per feature in the schema's order (its
    # FEATURE_NAMES), with the values a data file holds (a category as its text, a boolean as true or false).
    rows: pd.DataFrame
    labels: pd.Series  # the target of each row, as text

    def labelled(self) -> pd.DataFrame:
        """The rows with their target column, as a training file holds them."""
        return self.rows.assign(**{self.target: self.labels.to_numpy()})

    def one_row_per_class(self) -> pd.DataFrame:
        """The first row of each class, in the schema's order of the classes."""
        first = [int(self.labels[self.labels == c].index[0]) for c in self.classes]
        return self.rows.iloc[first].reset_index(drop=True)


def project_data(project: Path) -> ProjectData:
    """The project's schema, and its data/train/ read with its own load_training_data."""
    schema = project_module(project, "core.schema")
    data = project_module(project, "training.data")
    features, target, _source = data.load_training_data(project / "data" / "train")
    rows = pd.DataFrame({f.name: as_written(f, features[f.name]) for f in schema.FEATURES})
    return ProjectData(
        target=schema.TARGET,
        classes=list(schema.SCHEMA.classes),
        example={f.name: f.example for f in schema.FEATURES},
        rows=rows,
        labels=target,
    )


def as_written(feature: Any, column: pd.Series) -> pd.Series:
    """A feature's column as load_training_data gives it (the model's numbers: a category as
    its position among the categories, a boolean as 1 or 0) back to the values of a data file."""
    if feature.type == "category":
        return column.map(lambda v: None if v != v else feature.categories[int(v)])
    if feature.type == "boolean":
        return column.map(lambda v: None if v != v else bool(v))
    if feature.type == "integer":
        return column.astype("Int64")
    return column


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


def package_of(project: Path) -> str:
    """The rendered project's import name: the package under src/."""
    [name] = [p.name for p in (project / "src").iterdir() if (p / "__init__.py").is_file()]
    return name


def project_command(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 1800
) -> subprocess.CompletedProcess[str]:
    """`python -m <package> ARGS` of a rendered project, with this interpreter and its src/."""
    return run_in(
        project,
        PYTHON,
        "-m",
        package_of(project),
        *args,
        env={"PYTHONPATH": str(project / "src"), **(env or {})},
        timeout=timeout,
    )


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


# --- servers the tests start ---------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on a free port of 127.0.0.1, with the bucket made."""
    with moto_server(docker_support.free_port()) as endpoint:
        store(endpoint).create_dir(BUCKET)
        yield endpoint


@contextlib.contextmanager
def serving_on_host(
    docker: Any, image: str, env: dict[str, str]
) -> Iterator[tuple[str, float, Any]]:
    """The image's server with `env` on the host's network (free ports: it reaches servers the
    tests started on 127.0.0.1), once it answers /livez: its URL, when `docker run` was called
    (perf_counter) and the container."""
    port, grpc_port = docker_support.free_port(), docker_support.free_port()
    started = time.perf_counter()
    container = docker.containers.run(
        image,
        detach=True,
        network_mode="host",
        environment={**env, "PORT": str(port), "GRPC_PORT": str(grpc_port), "HOST": "127.0.0.1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        docker_support.wait_for(f"{url}/livez", timeout=60)
        yield url, started, container
    except BaseException:
        print(container.logs().decode(errors="replace"))
        raise
    finally:
        container.remove(force=True)
