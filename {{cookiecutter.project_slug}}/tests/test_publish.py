"""What training publishes to MLflow and when the alias moves (training/publish.py). The
tracking server itself is a real one in the template's own tests."""

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.core.schema import SCHEMA
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.training.publish import artifact_files, headline


def test_the_alias_moves_to_a_model_no_worse_than_its_own() -> None:
    rule = headline()
    better, worse = (0.9, 0.8) if SCHEMA.is_classification else (0.8, 0.9)
    assert rule.name == ("f1_macro" if SCHEMA.is_classification else "rmse")
    assert rule.no_worse(better, worse)
    assert rule.no_worse(better, better)  # the same figure: the newer model takes it
    assert not rule.no_worse(worse, better)
    assert rule.no_worse(worse, None)  # no alias yet
    assert rule.no_worse(worse, math.nan)  # the alias's run has no such metric


def test_the_published_files_are_the_artifact_on_disk_without_hidden_ones(
    tmp_path: Path,
) -> None:
    for name in ["metadata.json", "model.onnx", "report/metrics.json", ".incoming-x/model"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / ".lock").write_text("")
    found = [str(p.relative_to(tmp_path)) for p in artifact_files(tmp_path)]
    assert found == ["metadata.json", "model.onnx", "report/metrics.json"]


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v3", "V12", "has space", "a/b", "x" * 256])
def test_an_alias_mlflow_keeps_for_itself_or_cannot_hold_is_refused_at_start(alias: str) -> None:
    with pytest.raises(ValidationError, match="mlflow_alias"):
        Settings(mlflow_alias=alias)


@pytest.mark.parametrize("alias", ["champion", "v3-candidate", "prod_2", ""])
def test_an_alias_mlflow_takes_is_kept(alias: str) -> None:
    assert Settings(mlflow_alias=alias).mlflow_alias == (alias or None)
