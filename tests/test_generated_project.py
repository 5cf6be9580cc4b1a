"""The generated project passes its own checks: ruff, hadolint and its unit tests."""

from pathlib import Path

from .conftest import PYTHON, run_in


def test_ruff_check_is_clean(default_project: Path) -> None:
    result = run_in(default_project, PYTHON, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean(default_project: Path) -> None:
    result = run_in(default_project, PYTHON, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_hadolint_clean(default_project: Path) -> None:
    hadolint = Path(PYTHON).parent / "hadolint"
    result = run_in(default_project, str(hadolint), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_pass(default_project: Path) -> None:
    result = run_in(
        default_project,
        PYTHON,
        "-m",
        "pytest",
        "-q",
        "-m",
        "not container",
        "-p",
        "no:cacheprovider",
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
