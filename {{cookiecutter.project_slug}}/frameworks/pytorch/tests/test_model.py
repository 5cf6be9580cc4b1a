"""The PyTorch model: deterministic training, its hyperparameters reach it, its file is
safetensors, and weights of another shape are refused."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from {{ cookiecutter.package_name }}.core.artifact import (
    METADATA_FILE,
    ArtifactError,
    load_artifact,
)
from {{ cookiecutter.package_name }}.core.model import HYPERPARAMETERS, MODEL_FILE
from {{ cookiecutter.package_name }}.core.schema import load_sample
from {{ cookiecutter.package_name }}.core.settings import Settings

from .conftest import fitted


def test_the_same_data_and_seed_give_the_same_predictions() -> None:
    rows = load_sample()[0].to_numpy()
    first, second = fitted(), fitted()
    np.testing.assert_array_equal(first.predict_proba(rows), second.predict_proba(rows))
    assert np.abs(fitted(seed="7").predict_proba(rows) - first.predict_proba(rows)).max() > 0


def test_the_hidden_layer_size_reaches_the_model() -> None:
    assert HYPERPARAMETERS["hidden_units"] != 4
    weights = fitted(hidden_units="4").network.state_dict()
    assert tuple(weights["layers.0.weight"].shape) == (4, 4)


def test_the_model_file_is_safetensors(trained: Settings) -> None:
    weights = load_file(trained.model_dir / MODEL_FILE)
    hidden = int(HYPERPARAMETERS["hidden_units"])
    assert tuple(weights["layers.0.weight"].shape) == (hidden, 4)
    assert tuple(weights["layers.2.weight"].shape) == (3, hidden)


def test_weights_of_another_shape_are_refused(trained: Settings, tmp_path: Path) -> None:
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    (tmp_path / MODEL_FILE).write_bytes((trained.model_dir / MODEL_FILE).read_bytes())
    metadata["hyperparameters"]["hidden_units"] = 8
    (tmp_path / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match="size mismatch"):
        load_artifact(tmp_path, "native")  # the model file itself: the native runtime's
