"""The scikit-learn model: its hyperparameters reach it, and its file is reproducible."""

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from {{ cookiecutter.package_name }}.artifact import load_artifact
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.features import load_sample
from {{ cookiecutter.package_name }}.model import (
    HYPERPARAMETERS,
    MODEL_FILE,
    ZIP_EPOCH,
    build_model,
    read_model,
    write_model,
)
from {{ cookiecutter.package_name }}.train import DEFAULT_HYPERPARAMETERS


def fitted(**hyperparameters: object) -> Any:
    features, target = load_sample()
    model = build_model({**DEFAULT_HYPERPARAMETERS, **hyperparameters})
    model.fit(features.to_numpy(), target.to_numpy())
    return model


def test_round_trip_gives_the_same_probabilities(tmp_path: Path) -> None:
    model, rows = fitted(), load_sample()[0].to_numpy()
    write_model(model, tmp_path / MODEL_FILE)
    again = read_model(tmp_path / MODEL_FILE, {})
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))
    assert list(again.classes_) == ["setosa", "versicolor", "virginica"]


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
