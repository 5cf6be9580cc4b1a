"""The XGBoost model: its hyperparameters reach it, its file is XGBoost's JSON format, and a
model of another shape is refused."""

import json
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.core.artifact import (
    METADATA_FILE,
    ArtifactError,
    load_artifact,
)
from {{ cookiecutter.package_name }}.core.model import HYPERPARAMETERS, MODEL_FILE
from {{ cookiecutter.package_name }}.core.schema import load_sample
from {{ cookiecutter.package_name }}.core.settings import Settings

from .conftest import fitted


def test_the_tree_depth_reaches_the_model() -> None:
    rows = load_sample()[0].to_numpy()
    default, stumps = fitted(), fitted(max_depth="1")
    assert HYPERPARAMETERS["max_depth"] != 1
    difference = np.abs(stumps.predict_proba(rows) - default.predict_proba(rows))
    assert difference.max() > 0.01, "max_depth did not reach the model"


def test_the_model_file_is_xgboost_json(trained: Settings) -> None:
    saved = json.loads((trained.model_dir / MODEL_FILE).read_text())
    assert saved["learner"]["learner_model_param"]["num_class"] == "3"


def test_a_model_for_other_classes_is_refused(trained: Settings, tmp_path: Path) -> None:
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    (tmp_path / MODEL_FILE).write_bytes((trained.model_dir / MODEL_FILE).read_bytes())
    metadata["classes"] = ["only", "two"]
    (tmp_path / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match=r"scores 3 classes and metadata\.json names 2"):
        load_artifact(tmp_path, "native")  # the model file itself: the native runtime's
