"""The default project's image, built once per Python version, and each other framework's
image on Python 3.11, tested as shipped.

Each build is handed to the generated project's own container tests (IMAGE=...), which run
all three jobs through the Docker SDK. The versions run in parallel on separate workers;
tests of one version share its build (an xdist group keeps them on one worker).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from docker.errors import BuildError

from .conftest import PYTHON, Build, on_worker, project_data, render, run_in

# The generated container tests for each image, as its Makefile runs them.
FULL_IMAGE_TESTS = "container and not serving_image"
SERVING_IMAGE_TESTS = "container and not full_image"


def run_container_tests(
    project: Path, tag: str, *pytest_args: str, training_image: str = ""
) -> str:
    """The project's container tests against `tag`: the full image's, or with
    `training_image` (the full image, which trains its models) the serving image's."""
    env = {"IMAGE": tag, "REQUIRE_DOCKER": "1"}
    if training_image:
        env |= {"IMAGE_TARGET": "serve", "TRAINING_IMAGE": training_image}
    result = run_in(
        project,
        PYTHON,
        "-m",
        "pytest",
        "-m",
        SERVING_IMAGE_TESTS if training_image else FULL_IMAGE_TESTS,
        "-p",
        "no:cacheprovider",
        "-rA",
        *pytest_args,
        env=env,
    )
    summary = result.stdout[-8000:] + result.stderr[-3000:]
    assert result.returncode == 0, summary
    assert "skipped" not in result.stdout.splitlines()[-1], summary
    return summary


def image_python(docker: Any, tag: str) -> str:
    output = docker.containers.run(
        tag,
        ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        entrypoint="python",
        remove=True,
    )
    return str(output.decode().strip())


@pytest.mark.parametrize(
    "python_version", [pytest.param(v, marks=on_worker(v)) for v in ("3.11", "3.13")]
)
def test_generated_container_tests_pass(docker: Any, build: Build, python_version: str) -> None:
    project, tag = build(python_version)
    environment = docker.images.get(tag).attrs["Config"]["Env"]
    assert any(e.startswith("PATH=/opt/venv/bin") for e in environment)
    assert image_python(docker, tag) == python_version
    print(run_container_tests(project, tag))


@pytest.mark.parametrize(
    "framework",
    [pytest.param(f, marks=on_worker(f"3.11-{f}")) for f in ("xgboost", "lightgbm", "pytorch")],
)
def test_each_frameworks_container_tests_pass(docker: Any, build: Build, framework: str) -> None:
    """Every framework's image runs the whole generated container suite: the same contract
    (train, predict, serve, every protocol) whatever builds the model."""
    project, tag = build("3.11", framework=framework)
    metadata = docker.containers.run(
        tag,
        ["-c", "import json; print(open('/opt/ml/model/metadata.json').read())"],
        entrypoint="python",
        remove=True,
    )
    assert json.loads(metadata)["framework"] == framework
    print(run_container_tests(project, tag))


@on_worker("3.11-serve")
def test_serving_image_container_tests_pass(docker: Any, build: Build) -> None:
    """The slim serving image of the default project: smaller, no training library, the same
    labels, and the generated container tests that apply to it, with the full image
    training the models they mount."""
    _project, full = build("3.11")
    project, slim = build("3.11", target="serve")
    full_image, slim_image = docker.images.get(full), docker.images.get(slim)
    assert slim_image.attrs["Size"] < full_image.attrs["Size"]
    full_config, slim_config = full_image.attrs["Config"], slim_image.attrs["Config"]
    assert slim_config["Labels"] == full_config["Labels"]
    for key in ("User", "Entrypoint", "Cmd", "ExposedPorts", "Healthcheck", "WorkingDir"):
        assert slim_config[key] == full_config[key], key
    assert "MODEL_RUNTIME=onnx" in slim_config["Env"]
    print(run_container_tests(project, slim, training_image=full))


@on_worker("3.13")
def test_python_312_option_builds_on_a_base_image_of_your_own(docker: Any, build: Build) -> None:
    """No Debian release ships Python 3.12, so without registry access a 3.12 project is
    built on a base image of one's own choice, through BASE_IMAGE. Here that base is the
    3.13 one, which satisfies the project's `requires-python = ">=3.12"`."""
    project, tag = build("3.12", base_image="python:3.13-slim")
    labels = docker.images.get(tag).attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.base.name"] == "python:3.13-slim"
    assert image_python(docker, tag) == "3.13"
    run_container_tests(
        project, tag, "-k", "baked_model or batch_predict_a_file or train_writes_the_artifact"
    )


def make(project: Path, *args: str, tty: bool = False) -> subprocess.CompletedProcess[str]:
    """`make` in the project, with stdin from /dev/null, or from a pseudo-terminal."""
    command = ["make", "--no-print-directory", *args]
    if tty:  # util-linux's `script` gives the command a terminal
        command = ["script", "-qec", " ".join(command), "/dev/null"]
    return subprocess.run(
        command, cwd=project, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600
    )


@on_worker("3.11")
def test_makefile_serve_needs_no_terminal(build: Build) -> None:
    project, _ = build("3.11")
    without = make(project, "-n", "serve")
    assert without.returncode == 0, without.stderr
    assert "docker run --rm  -p" in without.stdout and "-it" not in without.stdout
    if shutil.which("script"):
        with_tty = make(project, "-n", "serve", tty=True)
        assert "docker run --rm -it -p" in with_tty.stdout, with_tty.stdout


@on_worker("3.11")
def test_makefile_predict_takes_absolute_paths(docker: Any, build: Build, tmp_path: Path) -> None:
    project, tag = build("3.11")
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    outputs.chmod(0o777)
    data = project_data(project)
    # A row of the first class and one of the last: the model tells them apart.
    data.one_row_per_class().iloc[[0, -1]].to_csv(inputs / "rows.csv", index=False)
    result = make(
        project,
        "predict",
        f"IMAGE={tag}",
        f"INPUT={inputs / 'rows.csv'}",
        f"OUTPUT={outputs / 'scored.csv'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'-v "{inputs}:/data/in:ro"' in result.stdout
    scored = pd.read_csv(outputs / "scored.csv")
    # What the image's `predict` gives the same file, run directly.
    docker.containers.run(
        tag,
        ["predict", "--input", "/data/in/rows.csv", "--output", "/data/out/direct.csv"],
        volumes={
            str(inputs): {"bind": "/data/in", "mode": "ro"},
            str(outputs): {"bind": "/data/out"},
        },
        remove=True,
    )
    expected = pd.read_csv(outputs / "direct.csv")["prediction"].tolist()
    assert scored["prediction"].tolist() == expected
    assert len(set(expected)) == 2 and set(expected) <= set(data.classes), expected
    assert os.stat(outputs / "scored.csv").st_uid == os.getuid()


@on_worker("3.11")
def test_readme_make_predict_works_as_written_on_a_fresh_project(build: Build) -> None:
    project, tag = build("3.11")
    result = make(project, "predict", f"IMAGE={tag}")
    assert result.returncode == 0, result.stdout + result.stderr
    scored = pd.read_csv(project / "data" / "predictions.csv")
    assert len(scored) == len(pd.read_csv(project / "data" / "sample.csv")) > 0
    assert set(scored["prediction"]) == set(project_data(project).classes)


@pytest.mark.parametrize("target", ["train", "predict", "serve", "data"])
def test_make_without_the_image_says_to_build_it(tmp_path: Path, target: str) -> None:
    project = render(tmp_path)
    result = make(project, target, "IMAGE=not-built-yet:latest")
    assert result.returncode != 0
    assert "no image not-built-yet:latest: run `make build` first" in result.stderr
    assert "docker run" not in result.stdout


@on_worker("3.11")
def test_a_tampered_hash_fails_the_build_with_pips_hash_error(docker: Any, tmp_path: Path) -> None:
    """The image installs only files whose hash the lock names: a changed hash stops it."""
    project = render(tmp_path)
    lock = project / "requirements.lock"
    text = lock.read_text()
    entry = re.search(r"^annotated-types==\S+(?: \\\n\s+--hash=sha256:[0-9a-f]{64})+", text, re.M)
    assert entry, "annotated-types is not in the lock"
    tampered = re.sub(r"sha256:[0-9a-f]", "sha256:0", entry.group(0))
    assert tampered != entry.group(0)
    lock.write_text(text.replace(entry.group(0), tampered))
    with pytest.raises(BuildError) as failure:
        docker.images.build(
            path=str(project), tag="iris-classifier:tampered", target="runtime", rm=True
        )
    log = "".join(str(chunk.get("stream", "")) for chunk in failure.value.build_log)
    assert "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE" in log, log[-3000:]
    assert "annotated-types" in log


@on_worker("3.11")
@pytest.mark.usefixtures("docker")  # `make lock` resolves inside the base image
def test_make_lock_regenerates_both_locks_with_hashes(tmp_path: Path) -> None:
    project = render(tmp_path)
    for lock in ("requirements.lock", "requirements-dev.lock"):
        (project / lock).write_text("")
    result = make(project, "lock")
    assert result.returncode == 0, result.stdout + result.stderr
    runtime, dev = (pins(project / lock) for lock in ("requirements.lock", "requirements-dev.lock"))
    assert {"fastapi", "scikit-learn", "numpy"} <= {name for name, _ in runtime}
    assert {"pytest", "ruff", "mypy"} <= {name for name, _ in dev}
    assert runtime <= dev, "the dev lock pins the runtime packages the same way"


def pins(lock: Path) -> set[tuple[str, str]]:
    """(name, version) of each requirement; fails if one has no hash."""
    entries = re.split(r"\n(?=[A-Za-z])", lock.read_text().split("\n", 2)[-1].strip())
    found = set()
    for entry in entries:
        name, version = re.match(r"([A-Za-z0-9_.\[\]-]+)==(\S+)", entry).groups()  # type: ignore[union-attr]
        assert "--hash=sha256:" in entry, f"{lock.name}: {name} has no hash"
        found.add((name.split("[")[0].lower(), version))
    return found


def test_shipped_locks_pin_and_hash_everything(default_project: Path) -> None:
    runtime = pins(default_project / "requirements.lock")
    dev = pins(default_project / "requirements-dev.lock")
    assert runtime <= dev
    pyproject = (default_project / "pyproject.toml").read_text()
    direct = set(re.findall(r'^    "([a-z0-9-]+)==', pyproject, re.M))
    assert direct and direct <= {name for name, _ in dev}
