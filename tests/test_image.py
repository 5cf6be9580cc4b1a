"""The default project's image, built once per Python version and tested as shipped.

Each build is handed to the generated project's own container tests (IMAGE=...), which run
all three jobs through the Docker SDK. The two versions run in parallel on separate workers.
"""

from pathlib import Path
from typing import Any

import pytest

from .conftest import PYTHON, render, run_in

VERSIONS = [pytest.param(v, marks=pytest.mark.xdist_group(f"image-{v}")) for v in ("3.11", "3.13")]


@pytest.mark.parametrize("python_version", VERSIONS)
def test_generated_container_tests_pass(docker: Any, tmp_path: Path, python_version: str) -> None:
    project = render(tmp_path, python_version=python_version)
    tag = f"iris-classifier:template-test-py{python_version}"
    image, _ = docker.images.build(path=str(project), tag=tag, rm=True, forcerm=True)
    python = image.attrs["Config"]["Env"]
    assert any(e.startswith("PATH=/opt/venv/bin") for e in python)
    version = docker.containers.run(
        tag,
        ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        entrypoint="python",
        remove=True,
    )
    assert version.decode().strip() == python_version

    result = run_in(
        project, PYTHON, "-m", "pytest", "-m", "container", "-p", "no:cacheprovider", "-rA",
        env={"IMAGE": tag, "REQUIRE_DOCKER": "1"},
    )  # fmt: skip
    summary = result.stdout[-8000:] + result.stderr[-3000:]
    assert result.returncode == 0, summary
    assert "skipped" not in result.stdout.splitlines()[-1], summary
    print(summary)
