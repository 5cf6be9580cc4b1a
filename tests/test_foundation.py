"""The foundation: a Docker Engine, and python:<version>-slim images that work offline."""

import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT

BASE_VERSIONS = ("3.11", "3.13")


def test_engine_answers(docker: Any) -> None:
    assert docker.ping()
    assert docker.version()["ApiVersion"]


def test_ensure_docker_is_idempotent(docker: Any) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/ensure-docker.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout


@pytest.mark.parametrize("version", BASE_VERSIONS)
def test_base_image_behaves_like_the_official_one(docker: Any, version: str) -> None:
    image = f"python:{version}-slim"
    script = (
        "import ssl, venv, sys, os, shutil; "
        "print('%d.%d' % sys.version_info[:2], os.environ['LANG'], bool(shutil.which('python3')), bool(shutil.which('pip')))"
    )
    output = docker.containers.run(image, ["python", "-c", script], remove=True).decode().split()
    assert output == [version, "C.UTF-8", "True", "True"]
    config = docker.images.get(image).attrs["Config"]
    assert config["Cmd"]
    labels = config.get("Labels") or {}
    if labels.get("io.github.cookiecutter-ml-container.stand-in") == "true":
        assert labels["org.opencontainers.image.base.name"].startswith("debian:")
        assert "stand-in" in labels["org.opencontainers.image.description"]


@pytest.mark.parametrize("version", BASE_VERSIONS)
def test_pip_install_in_a_venv_works_through_the_proxy(
    docker: Any, tmp_path: Path, version: str
) -> None:
    """A build FROM the base installs from the package index, trusting the proxy's CA."""
    (tmp_path / "Dockerfile").write_text(
        f"FROM python:{version}-slim\n"
        "RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir six==1.17.0\n"
        'CMD ["/opt/venv/bin/python", "-c", "import six; print(six.__version__)"]\n'
    )
    tag = f"foundation-pip-check:{version}"
    docker.images.build(path=str(tmp_path), tag=tag, rm=True, forcerm=True, nocache=True)
    try:
        assert docker.containers.run(tag, remove=True).decode().strip() == "1.17.0"
    finally:
        docker.images.remove(tag, force=True)


def test_second_base_image_run_is_a_no_op(docker: Any) -> None:
    before = {v: docker.images.get(f"python:{v}-slim").id for v in BASE_VERSIONS}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/base-images.sh"), *BASE_VERSIONS],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for version in BASE_VERSIONS:
        assert f"python:{version}-slim is already present; nothing to do" in result.stdout
        assert docker.images.get(f"python:{version}-slim").id == before[version]


def test_unknown_python_version_is_refused_clearly(docker: Any) -> None:
    """A version that no registry has and no Debian release ships: the answer is the same
    with or without registry access, on every run."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/base-images.sh"), "3.99"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "no Debian release provides Python 3.99" in result.stderr
    with pytest.raises(Exception, match="No such image"):
        docker.images.get("python:3.99-slim")
