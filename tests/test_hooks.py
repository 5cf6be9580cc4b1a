"""The pre-generation hook: every bad answer stops with one clear line and writes nothing."""

from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from .conftest import ROOT, render

BAD_ANSWERS = [
    ({"project_slug": "Iris Classifier", "package_name": "iris"}, "project_slug 'Iris Classifier'"),
    ({"project_slug": "-iris", "package_name": "iris"}, "project_slug '-iris'"),
    ({"project_slug": "iris--x", "package_name": "iris"}, "project_slug 'iris--x'"),
    (
        {"package_name": "iris-classifier"},
        "package_name 'iris-classifier': use a lowercase Python identifier",
    ),
    ({"package_name": "2fast"}, "package_name '2fast'"),
    ({"package_name": "class"}, "package_name 'class': is a Python keyword"),
    ({"package_name": "match"}, "package_name 'match': is a Python keyword"),
    ({"package_name": "json"}, "shadow the standard library module 'json'"),
    ({"package_name": "sklearn"}, "shadow the dependency 'sklearn'"),
    ({"package_name": "fastapi"}, "shadow the dependency 'fastapi'"),
    ({"author_email": "not-an-email"}, "author_email 'not-an-email'"),
    ({"author_email": "a@b"}, "author_email 'a@b'"),
    ({"version": "one"}, "version 'one': is not a PEP 440 version"),
    ({"version": "1.0-beta"}, "version '1.0-beta'"),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS, ids=[m for _, m in BAD_ANSWERS])
def test_bad_answer_stops_with_its_message_and_writes_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], message: str
) -> None:
    with pytest.raises(FailedHookException):
        render(tmp_path, **answers)
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, errors
    assert message in errors[0]
    assert list(tmp_path.iterdir()) == [], "files were written despite the error"


def test_several_bad_answers_are_all_reported(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        render(tmp_path, author_email="x", version="y")
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert [e.split()[1] for e in errors] == ["author_email", "version"]
    assert list(tmp_path.iterdir()) == []


def test_good_answers_pass(tmp_path: Path) -> None:
    project = render(
        tmp_path, project_name="Churn Model", author_email="ds@example.org", version="1.0rc1"
    )
    assert project.name == "churn-model"
    assert (project / "src" / "churn_model" / "cli.py").is_file()


def test_quotes_in_free_text_are_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FailedHookException):
        render(tmp_path, description='Predicts "churn"')
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and errors[0].startswith("ERROR: description")
    assert list(tmp_path.iterdir()) == []


def test_hook_knows_every_import_name_of_the_lock_file() -> None:
    """The generated package must not shadow anything its image installs, whatever the
    framework."""
    import ast
    import importlib.metadata as metadata
    import re

    hook = (ROOT / "hooks/pre_gen_project.py").read_text()
    listed = ast.literal_eval(re.search(r"DEPENDENCY_IMPORTS = (\{.*?\})", hook, re.S).group(1))
    locks = (ROOT / "{{cookiecutter.project_slug}}/frameworks").glob("*/requirements.lock")
    distributions = {
        re.split(r"[=\[]", line)[0].lower().replace("_", "-")
        for lock in locks
        for line in lock.read_text().splitlines()
        if re.match(r"[A-Za-z]", line)  # a requirement; hashes and comments are indented
    }
    imports = {
        name
        for name, owners in metadata.packages_distributions().items()
        if any(owner.lower().replace("_", "-") in distributions for owner in owners)
        and re.fullmatch(r"[a-z][a-z0-9_]*", name)  # the only names a package may take
    }
    assert imports, "the lock file's packages are not installed in this environment"
    assert imports - listed == set()
