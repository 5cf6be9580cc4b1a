"""The XGBoost model: its hyperparameters reach it, its file is XGBoost's JSON format, a model
of another shape is refused, and the trees take the schema's encoding as it is: a missing
value follows each split's default branch, category features are XGBoost's categories, in
ONNX as in XGBoost."""

import json
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.core.artifact import METADATA_FILE
from {{ cookiecutter.package_name }}.core.model import (
    HYPERPARAMETERS,
    MODEL_FILE,
    Classifier,
    build_model,
    read_model,
    write_model,
)
from {{ cookiecutter.package_name }}.core.runtime import OnnxModel
from {{ cookiecutter.package_name }}.core.schema import Feature
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.training.onnx_check import TOLERANCE, convert_and_check
from {{ cookiecutter.package_name }}.training.train import DEFAULT_HYPERPARAMETERS

from .conftest import fitted, training_data

# A schema with every kind of feature; none of them is the project's own.
MIXED = (
    Feature(name="size", type="number", nullable=True),
    Feature(name="count", type="integer", example=3),
    Feature(name="flag", type="boolean", nullable=True),
    Feature(name="colour", type="category", categories=("red", "green", "blue"), nullable=True),
    Feature(name="shape", type="category", categories=("round", "square"), example="round"),
)
SIZE, COUNT, FLAG, COLOUR, SHAPE = range(len(MIXED))
NUMBERS_ONLY = (
    Feature(name="width", type="number", example=1.0),
    Feature(name="height", type="number", example=2.0),
)


def mixed_rows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of MIXED in the schema's encoding (category codes, NaN for a missing value), a
    tenth of each nullable column missing, and their labels: the colour's, told by the size
    too (the colour plus noise)."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 3, count)
    columns = {
        SIZE: colour + rng.normal(0, 0.3, count),
        COUNT: rng.integers(0, 10, count),
        FLAG: rng.integers(0, 2, count),
        COLOUR: colour,
        SHAPE: rng.integers(0, 2, count),
    }
    rows = np.column_stack([columns[j] for j in range(len(MIXED))]).astype(np.float64)
    for j, feature in enumerate(MIXED):
        if feature.nullable:
            rows[rng.random(count) < 0.1, j] = np.nan
    return rows, np.array(["low", "middle", "high"])[colour]


@pytest.fixture
def mixed(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """The model and the ONNX check see the MIXED schema; its rows and labels."""
    for module in ("core.model", "training.onnx_check"):
        monkeypatch.setattr(f"{{ cookiecutter.package_name }}.{module}.FEATURES", MIXED)
    return mixed_rows(400, seed=0)


def fit(rows: np.ndarray, labels: np.ndarray) -> Classifier:
    return build_model(DEFAULT_HYPERPARAMETERS).fit(rows, labels)


def test_the_tree_depth_reaches_the_model() -> None:
    rows = training_data()[0].to_numpy()
    default, stumps = fitted(), fitted(max_depth="1")
    assert HYPERPARAMETERS["max_depth"] != 1
    difference = np.abs(stumps.predict_proba(rows) - default.predict_proba(rows))
    assert difference.max() > 0.01, "max_depth did not reach the model"


def test_the_model_file_is_xgboost_json(trained: Settings) -> None:
    saved = json.loads((trained.model_dir / MODEL_FILE).read_text())
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    classes = saved["learner"]["learner_model_param"]["num_class"]
    assert classes == str(len(metadata["classes"]))


def test_a_model_for_other_classes_is_refused(trained: Settings) -> None:
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    scored = len(metadata["classes"])
    metadata["classes"] = ["only", "two"]
    with pytest.raises(ValueError, match=rf"scores {scored} classes and metadata\.json names 2"):
        read_model(trained.model_dir / MODEL_FILE, metadata)


def test_numbers_only_train_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """No category: XGBoost's default feature types, the trees of before."""
    monkeypatch.setattr("{{ cookiecutter.package_name }}.core.model.FEATURES", NUMBERS_ONLY)
    rows = np.arange(40, dtype=np.float64).reshape(20, 2)
    labels = np.array(["small", "large"])[(rows[:, 0] > 20).astype(int)]
    assert fit(rows, labels).booster.feature_types is None


def test_a_missing_value_follows_the_learned_branch(mixed: tuple[np.ndarray, np.ndarray]) -> None:
    rows, labels = mixed
    model = fit(rows, labels)
    assert np.mean(model.predict(rows) == labels) > 0.9
    complete = rows[~np.isnan(rows).any(axis=1)][:20]
    for j, feature in enumerate(MIXED):
        if feature.nullable:
            missing = complete.copy()
            missing[:, j] = np.nan
            probabilities = model.predict_proba(missing)
            np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
            assert set(model.predict(missing)) <= set(labels)


def test_category_features_are_xgboosts_categories(
    mixed: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Split by sets of categories, not one-hot encoded: the file says which features are
    categories, and the trees split on them."""
    rows, labels = mixed
    model = fit(rows, labels)
    assert model.booster.feature_types == ["q", "q", "q", "c", "c"]
    write_model(model, tmp_path / MODEL_FILE)
    trees = json.loads((tmp_path / MODEL_FILE).read_text())["learner"]["gradient_booster"]
    assert any(tree["categories_nodes"] for tree in trees["model"]["trees"])
    metadata = {"hyperparameters": DEFAULT_HYPERPARAMETERS, "classes": list(model.classes_)}
    again = read_model(tmp_path / MODEL_FILE, metadata)
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))


def test_a_model_whose_categories_are_not_the_schemas_is_refused(
    mixed: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fit(*mixed)
    write_model(model, tmp_path / MODEL_FILE)
    monkeypatch.setattr("{{ cookiecutter.package_name }}.core.model.FEATURES", NUMBERS_ONLY)
    metadata = {"hyperparameters": DEFAULT_HYPERPARAMETERS, "classes": list(model.classes_)}
    with pytest.raises(ValueError, match="feature types are"):
        read_model(tmp_path / MODEL_FILE, metadata)


def test_onnx_gives_the_models_answers_with_missing_values_and_categories(
    mixed: tuple[np.ndarray, np.ndarray],
) -> None:
    model = fit(*mixed)
    held_out, _ = mixed_rows(100, seed=1)
    export = convert_and_check(model, {"held-out": held_out})
    assert export.report["reason"] is None
    assert export.report["verified"] is True
    assert set(export.report["rows_checked"]) == {"held-out", "missing-value", "category"}
    assert export.content is not None
    converted = OnnxModel(export.content, len(MIXED), [str(c) for c in model.classes_])
    assert np.isnan(held_out).any()
    np.testing.assert_array_equal(converted.predict(held_out), model.predict(held_out))
    difference = np.abs(converted.predict_proba(held_out) - model.predict_proba(held_out))
    assert difference.max() <= TOLERANCE
