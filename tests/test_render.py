"""Rendering: the default project and every option give a complete, fully rendered tree."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import ROOT, render

PYTHON_VERSIONS = json.loads((ROOT / "cookiecutter.json").read_text())["python_version"]
LICENSES = json.loads((ROOT / "cookiecutter.json").read_text())["license"]
FRAMEWORKS = json.loads((ROOT / "cookiecutter.json").read_text())["framework"]

# Every file of the default project. Options change this set only where a rule below says so.
PACKAGE_FILES = [
    "__init__.py",
    "__main__.py",
    "cli.py",
    "schema.yaml",
    "core/__init__.py",
    "core/artifact.py",
    "core/cpus.py",
    "core/encoding.py",
    "core/formats.py",
    "core/mlflow_registry.py",
    "core/model_source.py",
    "core/model.py",
    "core/predict.py",
    "core/runtime.py",
    "core/schema.py",
    "core/settings.py",
    "core/storage.py",
    "core/timestamps.py",
    "core/uris.py",
    "training/__init__.py",
    "training/data.py",
    "training/evaluation.py",
    "training/onnx_check.py",
    "training/onnx_convert.py",
    "training/publish.py",
    "training/schema_inference.py",
    "training/store.py",
    "training/train.py",
    "batch/__init__.py",
    "batch/dataset.py",
    "batch/files.py",
    "batch/folders.py",
    "batch/job.py",
    "batch/output.py",
    "batch/parts.py",
    "batch/progress.py",
    "batch/tables.py",
    "batch/engines/__init__.py",
    "batch/engines/dask.py",
    "batch/engines/local.py",
    "serve/__init__.py",
    "serve/app.py",
    "serve/auth.py",
    "serve/batching.py",
    "serve/errors.py",
    "serve/json_codec.py",
    "serve/logs.py",
    "serve/metrics.py",
    "serve/middleware.py",
    "serve/model_holder.py",
    "serve/openapi.py",
    "serve/payload_log.py",
    "serve/prediction_service.py",
    "serve/responses.py",
    "serve/run.py",
    "serve/schemas.py",
    "serve/v2_codec.py",
    "serve/grpc/__init__.py",
    "serve/grpc/inference.proto",
    "serve/grpc/inference_pb2.py",
    "serve/grpc/inference_pb2.pyi",
    "serve/grpc/inference_pb2_grpc.py",
    "serve/grpc/server.py",
    "serve/grpc/servicer.py",
    "serve/routes/__init__.py",
    "serve/routes/health.py",
    "serve/routes/lean_route.py",
    "serve/routes/metrics.py",
    "serve/routes/predict.py",
    "serve/routes/sagemaker.py",
    "serve/routes/v2.py",
]
OVERLAYS = ["dev", "prod", "kserve", "batch", "scheduled", "events", "store", "kserve-store"]
TEST_FILES = [
    "__init__.py",
    "conftest.py",
    "docker_support.py",
    "schemathesis_hooks.py",
    "test_api.py",
    "test_artifact.py",
    "test_batch_datasets.py",
    "test_batch_protocol.py",
    "test_batch_safety.py",
    "test_batch_scoring.py",
    "test_batching.py",
    "test_container.py",
    "test_container_batch.py",
    "test_container_batch_safety.py",
    "test_container_grpc.py",
    "test_container_openapi.py",
    "test_container_runtime.py",
    "test_container_serving.py",
    "test_cpus.py",
    "test_grpc.py",
    "test_model.py",
    "test_model_source.py",
    "test_openapi.py",
    "test_payload_log.py",
    "test_publish.py",
    "test_readme.py",
    "test_runtime.py",
    "test_schema.py",
    "test_storage.py",
    "test_train.py",
    "test_training_data_errors.py",
    "test_v2.py",
    "test_v2_codec.py",
    "test_v2_binary.py",
]
PROJECT_FILES = [
    ".devcontainer/devcontainer.json",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".dockerignore",
    ".gitignore",
    ".pre-commit-config.yaml",
    "CHANGELOG.md",
    "Dockerfile",
    "LICENSE",
    "Makefile",
    "README.md",
    "data/.gitkeep",
    "data/sample.csv",
    "data/train/iris.csv",
    "docker/install-locked.sh",
    *(
        f"deploy/{name}"
        for name in [
            "compose.yaml",
            "kubernetes/base/kustomization.yaml",
            "kubernetes/base/settings.env",
            "kubernetes/base/serviceaccount.yaml",
            "kubernetes/base/deployment.yaml",
            "kubernetes/base/service.yaml",
            "kubernetes/base/hpa.yaml",
            "kubernetes/base/pdb.yaml",
            "kubernetes/base/networkpolicy.yaml",
            "kubernetes/components/storage/kustomization.yaml",
            "kubernetes/components/storage/volumes.yaml",
            "kubernetes/components/batch/kustomization.yaml",
            "kubernetes/components/batch/job.yaml",
            "kubernetes/components/schedule/kustomization.yaml",
            "kubernetes/components/schedule/retrain.yaml",
            "kubernetes/components/schedule/score-nightly.yaml",
            "kubernetes/components/schedule/serve-model-volume.yaml",
            "kubernetes/components/keda/kustomization.yaml",
            "kubernetes/components/keda/kustomizeconfig.yaml",
            "kubernetes/components/keda/scaledjob.yaml",
            "kubernetes/components/keda/take-and-score.py",
            "kubernetes/components/keda/triggerauthentication.yaml",
            "kubernetes/components/kserve/kustomization.yaml",
            "kubernetes/components/kserve/kustomizeconfig.yaml",
            "kubernetes/components/kserve/inferenceservice.yaml",
            "kubernetes/components/model-store/kustomization.yaml",
            "kubernetes/components/model-store/model-store.env",
            "kubernetes/components/model-store/server.yaml",
            *(f"kubernetes/overlays/{o}/kustomization.yaml" for o in OVERLAYS),
            "kubernetes/overlays/dev/one-replica.yaml",
        ]
    ),
    "pyproject.toml",
    "requirements-dev.lock",
    "requirements-serve.lock",
    "requirements.lock",
    "wheels/.gitkeep",
]


def expected_files(package: str, license_name: str) -> set[str]:
    files = {
        *PROJECT_FILES,
        *(f"src/{package}/{name}" for name in PACKAGE_FILES),
        *(f"tests/{name}" for name in TEST_FILES),
    }
    if license_name == "Proprietary":
        files.remove("LICENSE")
    return files


def rendered_files(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}


@pytest.mark.parametrize("license_name", LICENSES)
@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_every_option_combination_renders_exactly_its_files(
    tmp_path: Path, python_version: str, license_name: str
) -> None:
    """The exact file set, and not one unrendered `{{`, `{%` or `cookiecutter.` left."""
    project = render(tmp_path, python_version=python_version, license=license_name)
    assert rendered_files(project) == expected_files("iris_classifier", license_name)
    leftovers = [
        name
        for name in rendered_files(project)
        if any(
            marker in unrendered_text(project / name) for marker in ("{{", "{%", "cookiecutter.")
        )
    ]
    assert leftovers == []


# Words that only a project of that framework may hold (scikit-learn itself is every
# project's: its held-out split and metrics).
FRAMEWORK_WORDS = {
    "sklearn": ["skops", "LogisticRegression"],
    "xgboost": ["xgboost", "XGBoost"],
    "lightgbm": ["lightgbm", "LightGBM"],
    "pytorch": ["torch", "PyTorch", "safetensors"],
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_framework_renders_exactly_its_files_and_no_other(
    tmp_path: Path, framework: str
) -> None:
    """The same file set for every framework, one core/model.py, and not a word of the others."""
    project = render(tmp_path, framework=framework)
    assert rendered_files(project) == expected_files("iris_classifier", "MIT")
    texts = {name: unrendered_text(project / name) for name in rendered_files(project)}
    assert [n for n, t in texts.items() if any(m in t for m in ("{{", "{%", "cookiecutter."))] == []
    assert any(FRAMEWORK_WORDS[framework][0] in text for text in texts.values())
    others = {
        (name, word)
        for other, words in FRAMEWORK_WORDS.items()
        if other != framework
        for word in words
        for name, text in texts.items()
        if word in text
    }
    assert others == set()


def test_an_unknown_framework_stops_before_any_file_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="framework"):
        render(tmp_path, framework="tensorflow")
    assert list(tmp_path.iterdir()) == []


# Other tools' own template syntax, which the project must keep: GitHub Actions expressions
# and docker/metadata-action's tag patterns.
FOREIGN_TEMPLATES = re.compile(r"\$\{\{.*?\}\}|pattern=\{\{[a-z]+\}\}(\.\{\{[a-z]+\}\})?")


def unrendered_text(path: Path) -> str:
    return FOREIGN_TEMPLATES.sub("", path.read_text(errors="ignore"))


@pytest.mark.parametrize(
    ("project_name", "slug", "package"),
    [
        ("Détection de fraude", "detection-de-fraude", "detection_de_fraude"),
        ("Fraud: Scorer (v2)!", "fraud-scorer-v2", "fraud_scorer_v2"),
        ("  Churn   Model  ", "churn-model", "churn_model"),
    ],
)
def test_names_with_accents_and_punctuation_get_an_ascii_slug(
    tmp_path: Path, project_name: str, slug: str, package: str
) -> None:
    project = render(tmp_path, project_name=project_name)
    assert project.name == slug
    assert rendered_files(project) == expected_files(package, "MIT")
    assert f"# {project_name}" in (project / "README.md").read_text()


def test_installed_project_runs_its_command(tmp_path: Path) -> None:
    """`pip install -e .` in a fresh virtual environment, then the console script."""
    project = render(tmp_path / "render")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "-e", str(project)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    result = subprocess.run(
        [str(venv / "bin/iris_classifier"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for command in ("train", "predict", "serve", "schema"):
        assert f"    {command} " in result.stdout, result.stdout


def test_default_project_is_complete(cookies: object) -> None:
    result = cookies.bake()  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert project.name == "iris-classifier"
    assert rendered_files(project) == expected_files("iris_classifier", "MIT")
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


def test_answers_reach_the_project(tmp_path: Path) -> None:
    project = render(
        tmp_path, project_name="Fraud Scorer", author_name="Risk Team", version="2.1.0"
    )
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "fraud-scorer"
    assert pyproject["project"]["version"] == "2.1.0"
    assert pyproject["project"]["scripts"] == {"fraud_scorer": "fraud_scorer.cli:main"}
    assert "fraud_scorer" in (project / "Dockerfile").read_text()
