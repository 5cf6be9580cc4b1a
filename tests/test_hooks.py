"""The pre-generation hook: every bad answer stops with one clear line and writes nothing."""

from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from .conftest import render

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
