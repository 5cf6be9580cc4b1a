"""The XGBoost model: its hyperparameters reach it, its file is XGBoost's JSON format, a model
of another shape is refused, and the trees take the schema's encoding as it is: a missing
value follows each split's default branch, category features are XGBoost's categories, in
ONNX as in XGBoost. A regression task gets a regressor of the squared error, whose values ONNX
Runtime gives within the tolerance, or the native model serves, with the reason."""

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
    Regressor,
    build_model,
    read_model,
    write_model,
)
from {{ cookiecutter.package_name }}.core.predict import predict_matrix
from {{ cookiecutter.package_name }}.core.runtime import OnnxModel, OnnxRegressor
from {{ cookiecutter.package_name }}.core.schema import Feature, Task
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.training import onnx_convert
from {{ cookiecutter.package_name }}.training.onnx_check import (
    TOLERANCE,
    convert_and_check,
)
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

MODEL_MODULE = "{{ cookiecutter.package_name }}.core.model"  # what the tests patch


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


def use_schema(monkeypatch: pytest.MonkeyPatch, task: Task) -> None:
    """The model, the prediction core and the ONNX check see the MIXED features and `task`,
    whatever the project's own schema."""
    for module in ("core.model", "training.onnx_check"):
        monkeypatch.setattr(f"{{ cookiecutter.package_name }}.{module}.FEATURES", MIXED)
    for module in ("core.model", "core.predict", "training.onnx_check"):
        monkeypatch.setattr(f"{{ cookiecutter.package_name }}.{module}.TASK", task)


@pytest.fixture
def mixed(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """A classification of the MIXED features; its rows and labels."""
    use_schema(monkeypatch, "multiclass")
    return mixed_rows(400, seed=0)


def fit(rows: np.ndarray, labels: np.ndarray) -> Classifier:
    model = build_model(DEFAULT_HYPERPARAMETERS)
    assert isinstance(model, Classifier)
    return model.fit(rows, labels)


def answers(model: Any, rows: np.ndarray) -> np.ndarray:
    """What a hyperparameter changes, on one scale whatever the project's task: a
    classifier's probabilities, a regressor's values in standard deviations of its target."""
    values, probabilities = predict_matrix(model, rows)
    if probabilities is not None:
        return probabilities
    return values / float(training_data()[1].std())


def test_the_tree_depth_reaches_the_model() -> None:
    rows = training_data()[0].to_numpy()
    default, stumps = fitted(), fitted(max_depth="1")
    assert HYPERPARAMETERS["max_depth"] != 1
    difference = np.abs(answers(stumps, rows) - answers(default, rows))
    assert difference.max() > 0.01, "max_depth did not reach the model"


def test_the_model_file_is_xgboost_json(trained: Settings) -> None:
    saved = json.loads((trained.model_dir / MODEL_FILE).read_text())
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    learner, classes = saved["learner"], len(metadata["classes"])
    if classes == 2:  # one score per row
        assert learner["objective"]["name"] == "binary:logistic"
    else:
        assert learner["learner_model_param"]["num_class"] == str(classes)


def test_a_model_for_other_classes_is_refused(
    mixed: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    write_model(fit(*mixed), tmp_path / MODEL_FILE)
    metadata = {"hyperparameters": DEFAULT_HYPERPARAMETERS, "classes": ["only", "two"]}
    with pytest.raises(ValueError, match=r"scores 3 classes and metadata\.json names 2"):
        read_model(tmp_path / MODEL_FILE, metadata)


def test_numbers_only_train_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """No category: XGBoost's default feature types, the trees of before."""
    monkeypatch.setattr(f"{MODEL_MODULE}.FEATURES", NUMBERS_ONLY)
    monkeypatch.setattr(f"{MODEL_MODULE}.TASK", "binary")
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
    monkeypatch.setattr(f"{MODEL_MODULE}.FEATURES", NUMBERS_ONLY)
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


# --- a regression task ------------------------------------------------------------------


def measured_rows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of MIXED as `mixed_rows` gives them, and a measured quantity of each, in the
    thousands: told by the colour (the row's size tells it too where the colour is missing),
    the count and the shape, with a little noise."""
    rows, labels = mixed_rows(count, seed)
    colour = np.array([("low", "middle", "high").index(label) for label in labels])
    noise = np.random.default_rng(seed + 100).normal(0, 10, count)
    return rows, 1000 + 300 * colour + 20 * rows[:, COUNT] + 100 * rows[:, SHAPE] + noise


@pytest.fixture
def regression(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """A regression of the MIXED features; its rows and values."""
    use_schema(monkeypatch, "regression")
    return measured_rows(400, seed=0)


def fit_regressor(rows: np.ndarray, values: np.ndarray) -> Regressor:
    model = build_model(DEFAULT_HYPERPARAMETERS)
    assert isinstance(model, Regressor)
    return model.fit(rows, values)


def r_squared(values: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - np.sum((values - predicted) ** 2) / np.sum((values - values.mean()) ** 2))


def test_a_regression_gets_boosted_trees_of_the_squared_error(
    regression: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """The same trees, on XGBoost's categories, fitted to the values: the file says so."""
    model = fit_regressor(*regression)
    held_out, truth = measured_rows(100, seed=1)
    predicted, probabilities = predict_matrix(model, held_out)
    assert probabilities is None
    assert predicted.dtype == np.float64 and predicted.shape == (100,)
    assert r_squared(truth, predicted) > 0.8
    write_model(model, tmp_path / MODEL_FILE)
    learner = json.loads((tmp_path / MODEL_FILE).read_text())["learner"]
    assert learner["objective"]["name"] == "reg:squarederror"
    assert any(tree["categories_nodes"] for tree in learner["gradient_booster"]["model"]["trees"])


def test_a_regressors_missing_value_follows_the_learned_branch(
    regression: tuple[np.ndarray, np.ndarray],
) -> None:
    rows, values = regression
    model = fit_regressor(rows, values)
    complete = rows[~np.isnan(rows).any(axis=1)][:20]
    for j, feature in enumerate(MIXED):
        if feature.nullable:
            missing = complete.copy()
            missing[:, j] = np.nan
            predicted = model.predict(missing)
            assert np.isfinite(predicted).all()
            assert values.min() - 100 < predicted.min() <= predicted.max() < values.max() + 100


def test_onnx_gives_the_regressors_values_with_missing_values_and_categories(
    regression: tuple[np.ndarray, np.ndarray],
) -> None:
    """Within TOLERANCE of the training target's standard deviation, on every row checked:
    the float32 trees of ONNX Runtime sum their leaves as XGBoost's do."""
    rows, values = regression
    model = fit_regressor(rows, values)
    held_out, _ = measured_rows(100, seed=1)
    export = convert_and_check(model, {"held-out": held_out}, values)
    assert export.report["reason"] is None
    assert export.report["verified"] is True
    assert set(export.report["rows_checked"]) == {"held-out", "missing-value", "category"}
    assert export.report["tolerance"] == pytest.approx(TOLERANCE * np.std(values))
    assert 0 <= export.report["max_abs_difference"] <= export.report["tolerance"]
    assert export.content is not None
    converted = OnnxRegressor(export.content, len(MIXED))
    assert np.isnan(held_out).any()
    onnx_values, probabilities = predict_matrix(converted, held_out)
    assert probabilities is None and onnx_values.dtype == np.float64
    np.testing.assert_allclose(
        onnx_values, model.predict(held_out), rtol=0, atol=export.report["tolerance"]
    )


def test_onnx_values_that_differ_are_refused_with_the_reason(
    regression: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversion that goes wrong (here: another model's) fails the check, and says by how
    much; training then saves the native model alone, which serves."""
    rows, values = regression
    model, other = fit_regressor(rows, values), fit_regressor(rows, values * 1.01)
    convert = onnx_convert.convert
    monkeypatch.setattr(
        "{{ cookiecutter.package_name }}.training.onnx_convert.convert",
        lambda _model, features: convert(other, features),
    )
    export = convert_and_check(model, {"held-out": measured_rows(100, seed=1)[0]}, values)
    assert export.content is None and export.report["verified"] is False
    assert export.report["reason"].startswith("values differ by up to ")
    assert export.report["max_abs_difference"] > 10 * export.report["tolerance"]


def test_a_regressor_is_read_back_and_a_classifier_is_not_taken_for_one(
    regression: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, values = regression
    model = fit_regressor(rows, values)
    write_model(model, tmp_path / MODEL_FILE)
    metadata = {"hyperparameters": DEFAULT_HYPERPARAMETERS, "classes": []}
    again = read_model(tmp_path / MODEL_FILE, metadata)
    assert isinstance(again, Regressor)
    np.testing.assert_array_equal(again.predict(rows), model.predict(rows))
    with monkeypatch.context() as classification:
        use_schema(classification, "multiclass")
        write_model(fit(*mixed_rows(100, seed=0)), tmp_path / MODEL_FILE)
    with pytest.raises(ValueError, match="its objective is multi:softprob, not a regression's"):
        read_model(tmp_path / MODEL_FILE, metadata)
