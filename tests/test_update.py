"""Updating a generated project to a newer template with cruft: the team's own changes stay,
the template's new files and changes arrive, and the project records the template commit."""

import json
import subprocess
from pathlib import Path

from .conftest import PYTHON, ROOT

CRUFT = str(Path(PYTHON).parent / "cruft")
GIT_USER = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]


def git(folder: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_USER, *args], cwd=folder, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_update_keeps_local_changes_and_brings_the_new_template(tmp_path: Path) -> None:
    # The template as committed, in a repository of its own that the test can move forward.
    template = tmp_path / "template"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(template)], check=True)
    old_commit = git(template, "rev-parse", "HEAD")

    created = subprocess.run(
        [CRUFT, "create", str(template), "--no-input", "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "out" / "iris-classifier"
    answers = json.loads((project / ".cruft.json").read_text())
    assert answers["commit"] == old_commit
    assert answers["context"]["cookiecutter"]["package_name"] == "iris_classifier"

    # The team commits the project and changes it.
    git(project, "init", "--quiet")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "-m", "generated")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nOn-call: the data team.\n")
    git(project, "commit", "--quiet", "-am", "local change")

    # The template moves on: a new file and a change to an existing one.
    slug_dir = template / "{{cookiecutter.project_slug}}"
    (slug_dir / "OPERATIONS.md").write_text("# Operating {{ cookiecutter.project_name }}\n")
    makefile = slug_dir / "Makefile"
    makefile.write_text("# Updated by the template.\n" + makefile.read_text())
    git(template, "add", "--all")
    git(template, "commit", "--quiet", "-m", "template change")
    new_commit = git(template, "rev-parse", "HEAD")

    updated = subprocess.run(
        [CRUFT, "update", "--skip-apply-ask", "--project-dir", str(project)],
        capture_output=True,
        text=True,
    )
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert readme.read_text().endswith("On-call: the data team.\n"), "the local change was lost"
    assert (project / "OPERATIONS.md").read_text() == "# Operating Iris Classifier\n"
    assert (project / "Makefile").read_text().startswith("# Updated by the template.\n")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == new_commit
    check = subprocess.run([CRUFT, "check", "--project-dir", str(project)], capture_output=True)
    assert check.returncode == 0, "cruft check: the project is not up to date"
