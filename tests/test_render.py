"""Rendering: the default project and every option give a complete, fully rendered tree."""

import json
import tomllib
from pathlib import Path

import pytest

from .conftest import ROOT

PYTHON_VERSIONS = json.loads((ROOT / "cookiecutter.json").read_text())["python_version"]
LICENSES = json.loads((ROOT / "cookiecutter.json").read_text())["license"]

EXPECTED = [
    "Dockerfile",
    ".dockerignore",
    "Makefile",
    "README.md",
    "pyproject.toml",
    "requirements.lock",
    "requirements-dev.lock",
    ".gitignore",
    "src/iris_classifier/cli.py",
    "src/iris_classifier/config.py",
    "src/iris_classifier/features.py",
    "src/iris_classifier/model.py",
    "src/iris_classifier/train.py",
    "src/iris_classifier/predict.py",
    "src/iris_classifier/serve/app.py",
    "src/iris_classifier/serve/schemas.py",
    "tests/test_api.py",
    "tests/test_container.py",
]


def test_default_project_is_complete(cookies: object) -> None:
    result = cookies.bake()  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert project.name == "iris-classifier"
    missing = [p for p in EXPECTED if not (project / p).is_file()]
    assert not missing
    assert (project / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_every_python_version_renders(cookies: object, python_version: str) -> None:
    result = cookies.bake(extra_context={"python_version": python_version})  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.exception
    project = result.project_path
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={python_version}"
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + python_version.replace(".", "")
    assert f"ARG BASE_IMAGE=python:{python_version}-slim" in (project / "Dockerfile").read_text()


@pytest.mark.parametrize("license_name", LICENSES)
def test_license_option(cookies: object, license_name: str) -> None:
    result = cookies.bake(extra_context={"license": license_name})  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.exception
    license_file = result.project_path / "LICENSE"
    assert license_file.exists() == (license_name != "Proprietary")
    expected = "LicenseRef-Proprietary" if license_name == "Proprietary" else license_name
    pyproject = tomllib.loads((result.project_path / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == expected


def test_nothing_is_left_unrendered(default_project: Path) -> None:
    leftovers = [
        str(path.relative_to(default_project))
        for path in default_project.rglob("*")
        if path.is_file()
        and (
            "{{" in path.read_text(errors="ignore")
            or "cookiecutter." in path.read_text(errors="ignore")
        )
    ]
    assert leftovers == []


def test_answers_reach_the_project(tmp_path: Path) -> None:
    from .conftest import render

    project = render(
        tmp_path, project_name="Fraud Scorer", author_name="Risk Team", version="2.1.0"
    )
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "fraud-scorer"
    assert pyproject["project"]["version"] == "2.1.0"
    assert pyproject["project"]["scripts"] == {"fraud_scorer": "fraud_scorer.cli:main"}
    assert "fraud_scorer" in (project / "Dockerfile").read_text()
