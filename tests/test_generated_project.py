"""The generated project passes its own checks: ruff, mypy, hadolint and its unit tests."""

import os
import re
from pathlib import Path

import pytest

from .conftest import PYTHON, UNIT_TESTS, render, run_in


def test_ruff_check_is_clean(default_project: Path) -> None:
    result = run_in(default_project, PYTHON, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean(default_project: Path) -> None:
    result = run_in(default_project, PYTHON, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean(default_project: Path) -> None:
    result = run_in(default_project, PYTHON, "-m", "mypy")  # strict, per pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_every_type_ignore_names_its_error_and_says_why(default_project: Path) -> None:
    unexplained = []
    for path in sorted((default_project / "src").rglob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if "type: ignore" not in line:
                continue
            coded = re.search(r"type: ignore\[[a-z-]+(, *[a-z-]+)*\]", line)
            explained = number > 0 and lines[number - 1].strip().startswith("#")
            if not (coded and explained):
                unexplained.append(f"{path.relative_to(default_project)}:{number + 1}")
    assert unexplained == [], "a `# type: ignore[code]` needs a comment above it saying why"


def test_dockerfile_is_hadolint_clean(default_project: Path) -> None:
    hadolint = Path(PYTHON).parent / "hadolint"
    result = run_in(default_project, str(hadolint), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


# Settings a developer's or a CI machine's environment may hold: the unit tests must not see
# them (with them, /predict would answer 401 and the server would listen on port 1).
MACHINE_ENVIRONMENT = {
    "PORT": "1",
    "API_TOKEN": "a-token-of-this-machine",
    "BATCHING": "false",
    "MODEL_DIR": "/nonexistent",
    "LOG_LEVEL": "critical",
}


def test_unit_tests_pass_whatever_the_machines_environment(default_project: Path) -> None:
    result = run_in(default_project, PYTHON, *UNIT_TESTS, env=MACHINE_ENVIRONMENT)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_data_folder_is_kept_but_its_files_are_ignored(tmp_path: Path) -> None:
    project = render(tmp_path)

    def ignored(path: str) -> bool:
        check = run_in(project, "git", "check-ignore", "-q", path)
        assert check.returncode in (0, 1), check.stderr
        return check.returncode == 0

    assert run_in(project, "git", "init", "-q").returncode == 0
    assert (project / "data" / ".gitkeep").is_file()
    assert not ignored("data/.gitkeep")
    assert ignored("data/input.csv") and ignored("data/train/part.parquet")
    assert ignored("artifacts/model/metadata.json")
    assert not ignored("src/iris_classifier/core/model.py")


def test_pre_commit_passes_on_a_fresh_render(tmp_path: Path) -> None:
    """Local hooks only (no hook repository to clone), and all of them pass."""
    project = render(tmp_path)
    config = (project / ".pre-commit-config.yaml").read_text()
    assert re.findall(r"- repo: (\S+)", config) == ["local"]
    tools = str(Path(PYTHON).parent)  # the pinned tools: python, hadolint, check-yaml, ...
    environment = {"PATH": f"{tools}:{os.environ['PATH']}", "PRE_COMMIT_HOME": str(tmp_path)}
    for command in (["git", "init", "-q"], ["git", "add", "-A"]):
        assert run_in(project, *command).returncode == 0
    result = run_in(project, f"{tools}/pre-commit", "run", "--all-files", env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    for hook in ("ruff check", "ruff format", "mypy (strict)", "hadolint", "check YAML"):
        assert re.search(rf"^{re.escape(hook)}\.+Passed$", result.stdout, re.MULTILINE), hook


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm", "pytorch"])
def test_each_framework_is_lint_clean_and_passes_its_unit_tests(
    tmp_path: Path, framework: str
) -> None:
    """The other frameworks' renders pass the same checks as the default one: ruff, ruff
    format, mypy strict, hadolint and every unit test."""
    project = render(tmp_path, framework=framework)
    hadolint = str(Path(PYTHON).parent / "hadolint")
    for check in (
        [PYTHON, "-m", "ruff", "check", "."],
        [PYTHON, "-m", "ruff", "format", "--check", "."],
        [PYTHON, "-m", "mypy"],
        [hadolint, "Dockerfile"],
        [PYTHON, *UNIT_TESTS],
    ):
        result = run_in(project, *check)
        assert result.returncode == 0, f"{check}: " + result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
