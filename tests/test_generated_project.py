"""The generated project passes its own checks: ruff, mypy, its import contracts, hadolint and
its unit tests."""

import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from .conftest import PYTHON, UNIT_TESTS, render, run_in

# ruff's lint and its formatter's check, as the generated `make lint` runs them.
RUFF = ([PYTHON, "-m", "ruff", "check", "."], [PYTHON, "-m", "ruff", "format", "--check", "."])


def test_ruff_check_is_clean(default_project: Path) -> None:
    result = run_in(default_project, *RUFF[0])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean(default_project: Path) -> None:
    result = run_in(default_project, *RUFF[1])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean(default_project: Path) -> None:
    result = run_in(default_project, PYTHON, "-m", "mypy")  # strict, per pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


LINT_IMPORTS = str(Path(PYTHON).parent / "lint-imports")
# Where the package is, for import-linter (as `make lint` sets it).
ON_SRC = {"PYTHONPATH": "src"}


def contracts(project: Path) -> dict[str, str]:
    """Each import contract of the project's pyproject.toml by name, KEPT or BROKEN."""
    result = run_in(project, LINT_IMPORTS, "--no-cache", env=ON_SRC)
    names = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["importlinter"]
    found = {}
    for contract in names["contracts"]:
        pattern = r"\s+".join(map(re.escape, contract["name"].split()))
        match = re.search(pattern + r"\s+(KEPT|BROKEN)", result.stdout)
        assert match, f"{contract['name']!r} not in the report:\n{result.stdout}{result.stderr}"
        found[contract["name"]] = match.group(1)
    return found


def test_the_import_contracts_hold(default_project: Path) -> None:
    found = contracts(default_project)
    assert len(found) >= 4
    assert set(found.values()) == {"KEPT"}, found


# Imports that break the contracts, each contract at least once: the module, the line added
# to it, and the words of the contracts it breaks. Core importing a pipeline is also a cycle,
# since every pipeline imports core; a pipeline importing the command line breaks the layers
# (the package's root is in no layer: the protected contract keeps it from the command line).
BREAKS = {
    "a pipeline imports another": ("batch/job.py", "from ..training import data", ["stand on"]),
    "core imports a pipeline": ("core/artifact.py", "from .. import batch", ["stand on", "cycles"]),
    "the package's root imports the command line": (
        "__init__.py",
        "from . import cli",
        ["command line"],
    ),
    "gRPC imports an HTTP route": ("serve/grpc/servicer.py", "from ..routes import v2", ["gRPC"]),
    "batch imports the web framework": ("batch/output.py", "import fastapi", ["web and RPC"]),
    "two modules import each other": ("batch/tables.py", "from . import job", ["cycles"]),
}


@pytest.mark.parametrize("case", BREAKS, ids=list(BREAKS))
def test_each_import_contract_fails_when_broken(
    default_project: Path, tmp_path: Path, case: str
) -> None:
    module, line, broken = BREAKS[case]
    project = tmp_path / "project"
    shutil.copytree(default_project, project, ignore=shutil.ignore_patterns(".*cache*"))
    source = project / "src/iris_classifier" / module
    source.write_text(source.read_text() + f"\n{line}  # noqa: E402, F401\n")
    found = contracts(project)
    expected = [name for name in found if any(words in name for words in broken)]
    assert len(expected) == len(broken)
    assert [name for name, state in found.items() if state == "BROKEN"] == expected, found


def test_every_contract_is_broken_by_one_of_the_cases(default_project: Path) -> None:
    names = contracts(default_project)
    covered = {n for _, _, broken in BREAKS.values() for n in names for w in broken if w in n}
    assert covered == set(names)


def test_a_long_package_name_stays_lint_clean(tmp_path: Path) -> None:
    """Lines that name the package are wrapped so that a 40-character name still fits."""
    project = render(tmp_path, project_name="Customer Lifetime Value Forecaster Of Forty")
    for check in RUFF:
        result = run_in(project, *check)
        assert result.returncode == 0, f"{check}: " + result.stdout + result.stderr


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


def test_data_folder_keeps_the_training_data_and_ignores_the_rest(tmp_path: Path) -> None:
    project = render(tmp_path)

    def ignored(path: str) -> bool:
        check = run_in(project, "git", "check-ignore", "-q", path)
        assert check.returncode in (0, 1), check.stderr
        return check.returncode == 0

    assert run_in(project, "git", "init", "-q").returncode == 0
    assert (project / "data" / ".gitkeep").is_file()
    assert not ignored("data/.gitkeep")
    assert ignored("data/input.csv") and ignored("data/scores/part-00000.csv")
    # The training data (`make data` keeps it in data/train/) goes into git and the image.
    assert not ignored("data/sample.csv") and not ignored("data/train/iris.csv")
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
    hooks = (
        "ruff check",
        "ruff format",
        "mypy (strict)",
        "import contracts",
        "hadolint",
        "check YAML",
    )
    for hook in hooks:
        assert re.search(rf"^{re.escape(hook)}\.+Passed$", result.stdout, re.MULTILINE), hook


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm", "pytorch"])
def test_each_framework_is_lint_clean_and_passes_its_unit_tests(
    tmp_path: Path, framework: str
) -> None:
    """The other frameworks' renders pass the same checks as the default one: ruff, ruff
    format, mypy strict, the import contracts, hadolint and every unit test."""
    project = render(tmp_path, framework=framework)
    hadolint = str(Path(PYTHON).parent / "hadolint")
    for check in (
        *RUFF,
        [PYTHON, "-m", "mypy"],
        [LINT_IMPORTS],
        [hadolint, "Dockerfile"],
        [PYTHON, *UNIT_TESTS],
    ):
        result = run_in(project, *check, env=ON_SRC)
        assert result.returncode == 0, f"{check}: " + result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
