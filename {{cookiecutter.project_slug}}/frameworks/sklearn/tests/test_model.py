"""The scikit-learn model: its hyperparameters reach it, its file carries no time, a pipeline
skl2onnx cannot convert still trains, with the reason, and the features are prepared as the
schema says: missing values imputed, categories one-hot encoded, in ONNX as in scikit-learn.
A regression task gets a ridge regression after the same preparation, whose values ONNX
Runtime gives within the tolerance, or the native model serves, with the reason."""

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from {{ cookiecutter.package_name }}.core.artifact import load_artifact
from {{ cookiecutter.package_name }}.core.model import (
    HYPERPARAMETERS,
    MODEL_FILE,
    ZIP_EPOCH,
    build_model,
    read_model,
    write_model,
)
from {{ cookiecutter.package_name }}.core.predict import predict_matrix
from {{ cookiecutter.package_name }}.core.runtime import (
    ONNX_FILE,
    OnnxModel,
    OnnxRegressor,
)
from {{ cookiecutter.package_name }}.core.schema import SCHEMA, Feature, Task
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.training import onnx_convert
from {{ cookiecutter.package_name }}.training.onnx_check import (
    TOLERANCE,
    convert_and_check,
)
from {{ cookiecutter.package_name }}.training.train import (
    DEFAULT_HYPERPARAMETERS,
    train,
)

from .conftest import fitted, make_settings, training_data

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


def fit(rows: np.ndarray, labels: np.ndarray) -> Pipeline:
    model = build_model(DEFAULT_HYPERPARAMETERS)
    model.fit(rows, labels)
    return model


def most_frequent(column: np.ndarray) -> float:
    values, counts = np.unique(column[~np.isnan(column)], return_counts=True)
    return float(values[counts.argmax()])


def answers(model: Any, rows: np.ndarray) -> np.ndarray:
    """What a hyperparameter changes, on one scale whatever the project's task: a
    classifier's probabilities, a regressor's values in standard deviations of its target."""
    values, probabilities = predict_matrix(model, rows)
    if probabilities is not None:
        return probabilities
    return values / float(training_data()[1].std())


def test_the_regularisation_reaches_the_model() -> None:
    rows = training_data()[0].to_numpy()
    default, weaker = fitted(), fitted(C="0.05")
    assert HYPERPARAMETERS["C"] != 0.05
    difference = np.abs(answers(weaker, rows) - answers(default, rows))
    assert difference.max() > 0.05, "C did not reach the model"


def test_the_model_file_carries_no_time(trained: Settings) -> None:
    with zipfile.ZipFile(trained.model_dir / MODEL_FILE) as archive:
        assert {info.date_time for info in archive.infolist()} == {ZIP_EPOCH}
    load_artifact(trained.model_dir)


def test_numbers_none_missing_get_the_scaler_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing to impute or encode: one step before the regression, as fast as before."""
    monkeypatch.setattr(f"{MODEL_MODULE}.FEATURES", NUMBERS_ONLY)
    prepare = build_model(DEFAULT_HYPERPARAMETERS).named_steps["prepare"]
    assert type(prepare) is StandardScaler


def test_a_missing_value_becomes_the_median_or_the_most_frequent_value(
    mixed: tuple[np.ndarray, np.ndarray],
) -> None:
    rows, labels = mixed
    model = fit(rows, labels)
    complete = rows[~np.isnan(rows).any(axis=1)][:20]
    fills = {
        SIZE: float(np.nanmedian(rows[:, SIZE])),
        FLAG: most_frequent(rows[:, FLAG]),
        COLOUR: most_frequent(rows[:, COLOUR]),
    }
    for j, fill in fills.items():
        missing, filled = complete.copy(), complete.copy()
        missing[:, j], filled[:, j] = np.nan, fill
        probabilities = model.predict_proba(missing)
        np.testing.assert_allclose(probabilities, model.predict_proba(filled), rtol=0, atol=1e-12)
        assert set(model.predict(missing)) <= set(labels)
    assert model.score(rows, labels) > 0.9


def test_each_category_becomes_a_column_of_its_own(mixed: tuple[np.ndarray, np.ndarray]) -> None:
    rows, labels = mixed
    prepare = fit(rows, labels).named_steps["prepare"]
    complete = rows[~np.isnan(rows).any(axis=1)]
    prepared = prepare.transform(complete)
    # The numbers and the boolean first, then red, green, blue, round and square.
    assert prepared.shape == (len(complete), 3 + 3 + 2)
    one_hot = np.hstack(
        [np.eye(3)[complete[:, COLOUR].astype(int)], np.eye(2)[complete[:, SHAPE].astype(int)]]
    )
    np.testing.assert_array_equal(prepared[:, 3:], one_hot)


def test_onnx_gives_the_models_answers_with_missing_values_and_categories(
    mixed: tuple[np.ndarray, np.ndarray],
) -> None:
    rows, labels = mixed
    model = fit(rows, labels)
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


def test_a_model_with_imputers_and_encoders_is_read_back_safely(
    mixed: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Every type in its file is trusted (TRUSTED_TYPES), and it answers as before."""
    rows, labels = mixed
    model = fit(rows, labels)
    write_model(model, tmp_path / MODEL_FILE)
    again = read_model(tmp_path / MODEL_FILE, {})
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))


def test_a_pipeline_skl2onnx_cannot_convert_trains_and_serves_natively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step of one's own (here a sign change, after the preparation) has no ONNX
    converter: training says so, saves the native model only, and the native model serves."""

    def with_a_step_of_ones_own(hyperparameters: dict[str, object]) -> Pipeline:
        (prepare, estimator) = build_model(hyperparameters).steps
        return Pipeline([prepare, ("own", FunctionTransformer(np.negative)), estimator])

    monkeypatch.setattr(
        "{{ cookiecutter.package_name }}.training.train.build_model",
        with_a_step_of_ones_own,
    )
    settings = make_settings(tmp_path)
    report = train(settings)["onnx"]
    assert report["verified"] is False
    assert report["reason"].startswith("the model cannot be converted to ONNX: RuntimeError: ")
    assert "FunctionTransformer" in report["reason"]
    assert not (settings.model_dir / ONNX_FILE).exists()
    artifact = load_artifact(settings.model_dir)
    assert artifact.runtime.name == "native"
    (answer,) = artifact.model.predict(training_data()[0].to_numpy()[:1])
    if SCHEMA.is_classification:
        assert answer in artifact.metadata["classes"]
    else:
        assert np.isfinite(answer)


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


def r_squared(values: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - np.sum((values - predicted) ** 2) / np.sum((values - values.mean()) ** 2))


def test_a_regression_gets_a_ridge_regression_after_the_same_preparation(
    regression: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, values = regression
    model = fit(rows, values)
    assert type(model.named_steps["regress"]) is Ridge
    monkeypatch.setattr(f"{MODEL_MODULE}.TASK", "multiclass")
    classifier = build_model(DEFAULT_HYPERPARAMETERS)
    assert type(model.named_steps["prepare"]) is type(classifier.named_steps["prepare"])
    held_out, truth = measured_rows(100, seed=1)
    predicted, probabilities = predict_matrix(model, held_out)
    assert probabilities is None
    assert predicted.dtype == np.float64 and predicted.shape == (100,)
    assert r_squared(truth, predicted) > 0.8


def test_the_regularisation_reaches_the_regressor(
    regression: tuple[np.ndarray, np.ndarray],
) -> None:
    """C, the classifier's, is the regressor's too: its alpha is 1 / (2 C)."""
    rows, values = regression
    default = build_model(DEFAULT_HYPERPARAMETERS).fit(rows, values)
    stronger = build_model({**DEFAULT_HYPERPARAMETERS, "C": "0.001"}).fit(rows, values)
    assert stronger.named_steps["regress"].alpha == pytest.approx(500)
    assert np.abs(stronger.predict(rows) - default.predict(rows)).max() > 10


def test_a_regressor_imputes_a_missing_value_as_the_classifier_does(
    regression: tuple[np.ndarray, np.ndarray],
) -> None:
    rows, values = regression
    model = fit(rows, values)
    complete = rows[~np.isnan(rows).any(axis=1)][:20]
    fills = {
        SIZE: float(np.nanmedian(rows[:, SIZE])),
        FLAG: most_frequent(rows[:, FLAG]),
        COLOUR: most_frequent(rows[:, COLOUR]),
    }
    for j, fill in fills.items():
        missing, filled = complete.copy(), complete.copy()
        missing[:, j], filled[:, j] = np.nan, fill
        np.testing.assert_allclose(model.predict(missing), model.predict(filled), rtol=1e-12)


def test_onnx_gives_the_regressors_values_with_missing_values_and_categories(
    regression: tuple[np.ndarray, np.ndarray],
) -> None:
    """Within TOLERANCE of the training target's standard deviation, on every row checked."""
    rows, values = regression
    model = fit(rows, values)
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
    model, other = fit(rows, values), fit(rows, values * 1.01)
    convert = onnx_convert.convert
    monkeypatch.setattr(
        "{{ cookiecutter.package_name }}.training.onnx_convert.convert",
        lambda _model, features: convert(other, features),
    )
    export = convert_and_check(model, {"held-out": measured_rows(100, seed=1)[0]}, values)
    assert export.content is None and export.report["verified"] is False
    assert export.report["reason"].startswith("values differ by up to ")
    assert export.report["max_abs_difference"] > 10 * export.report["tolerance"]


def test_a_regressor_is_read_back_safely(
    regression: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    rows, values = regression
    model = fit(rows, values)
    write_model(model, tmp_path / MODEL_FILE)
    again = read_model(tmp_path / MODEL_FILE, {"classes": []})
    np.testing.assert_array_equal(again.predict(rows), model.predict(rows))
