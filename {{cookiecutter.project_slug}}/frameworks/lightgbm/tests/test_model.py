"""The LightGBM model: its hyperparameters reach it, its file is LightGBM's text format, a
model of another shape is refused, and the trees take the schema's encoding as it is: a
missing value follows each split's default branch, category features are LightGBM's
categorical features, in ONNX as in LightGBM."""

import json
from pathlib import Path
from typing import Any

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
from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, Feature
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


def decisions(node: dict[str, Any]) -> set[str]:
    """The kinds of split in a tree of LightGBM's JSON dump: "<=" or "==" (a category)."""
    if "decision_type" not in node:
        return set()
    return {node["decision_type"], *decisions(node["left_child"]), *decisions(node["right_child"])}


def test_the_leaf_count_reaches_the_model() -> None:
    rows = training_data()[0].to_numpy()
    default, stumps = fitted(), fitted(num_leaves="2")
    assert HYPERPARAMETERS["num_leaves"] != 2
    difference = np.abs(stumps.predict_proba(rows) - default.predict_proba(rows))
    assert difference.max() > 0.01, "num_leaves did not reach the model"


def test_the_model_file_is_lightgbm_text(trained: Settings) -> None:
    lines = (trained.model_dir / MODEL_FILE).read_text().splitlines()
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    assert lines[0] == "tree" and f"num_class={len(metadata['classes'])}" in lines
    assert "feature_names=" + " ".join(FEATURE_NAMES) in lines


def test_a_model_for_other_classes_is_refused(trained: Settings) -> None:
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    scored = len(metadata["classes"])
    metadata["classes"] = ["only", "two"]
    with pytest.raises(ValueError, match=rf"scores {scored} classes and metadata\.json names 2"):
        read_model(trained.model_dir / MODEL_FILE, metadata)


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


def test_category_features_are_lightgbms_categorical_features(
    mixed: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Split by their categories, not one-hot encoded, and so in the file read back."""
    rows, labels = mixed
    write_model(fit(rows, labels), tmp_path / MODEL_FILE)
    metadata = {"hyperparameters": DEFAULT_HYPERPARAMETERS, "classes": sorted(set(labels))}
    model = read_model(tmp_path / MODEL_FILE, metadata)
    dump = model.booster.dump_model()
    categorical = [name for name, info in dump["feature_infos"].items() if info["values"]]
    assert categorical == ["colour", "shape"]
    assert any("==" in decisions(tree["tree_structure"]) for tree in dump["tree_info"])
    np.testing.assert_array_equal(model.predict(rows), fit(rows, labels).predict(rows))


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
