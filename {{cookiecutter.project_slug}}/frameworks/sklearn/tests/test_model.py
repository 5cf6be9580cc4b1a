"""The scikit-learn model: its hyperparameters reach it, its file carries no time, and a
pipeline skl2onnx cannot convert still trains, with the reason."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from {{ cookiecutter.package_name }}.core.artifact import load_artifact
from {{ cookiecutter.package_name }}.core.model import (
    HYPERPARAMETERS,
    MODEL_FILE,
    ZIP_EPOCH,
)
from {{ cookiecutter.package_name }}.core.runtime import ONNX_FILE
from {{ cookiecutter.package_name }}.core.schema import load_sample
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.training.train import train

from .conftest import fitted, make_settings


def test_the_regularisation_reaches_the_model() -> None:
    rows = load_sample()[0].to_numpy()
    default, weaker = fitted(), fitted(C="0.05")
    assert HYPERPARAMETERS["C"] != 0.05
    difference = np.abs(weaker.predict_proba(rows) - default.predict_proba(rows))
    assert difference.max() > 0.05, "C did not reach the model"


def test_the_model_file_carries_no_time(trained: Settings) -> None:
    with zipfile.ZipFile(trained.model_dir / MODEL_FILE) as archive:
        assert {info.date_time for info in archive.infolist()} == {ZIP_EPOCH}
    load_artifact(trained.model_dir)


def test_a_pipeline_skl2onnx_cannot_convert_trains_and_serves_natively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step of one's own (here a log transform) has no ONNX converter: training says so,
    saves the native model only, and the native model serves."""

    def with_a_log_step(hyperparameters: dict[str, object]) -> Pipeline:
        classify = LogisticRegression(max_iter=1000, random_state=0)
        return Pipeline([("log", FunctionTransformer(np.log1p)), ("classify", classify)])

    monkeypatch.setattr(
        "{{ cookiecutter.package_name }}.training.train.build_model",
        with_a_log_step,
    )
    settings = make_settings(tmp_path)
    report = train(settings)["onnx"]
    assert report["verified"] is False
    assert report["reason"].startswith("the model cannot be converted to ONNX: RuntimeError: ")
    assert "FunctionTransformer" in report["reason"]
    assert not (settings.model_dir / ONNX_FILE).exists()
    artifact = load_artifact(settings.model_dir)
    assert artifact.runtime.name == "native"
    assert list(artifact.model.predict(load_sample()[0].to_numpy()[:1])) == ["setosa"]
