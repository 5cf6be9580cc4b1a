"""The scikit-learn model: its hyperparameters reach it, and its file carries no time."""

import zipfile

import numpy as np

from {{ cookiecutter.package_name }}.artifact import load_artifact
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.features import load_sample
from {{ cookiecutter.package_name }}.model import (
    HYPERPARAMETERS,
    MODEL_FILE,
    ZIP_EPOCH,
)

from .conftest import fitted


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
