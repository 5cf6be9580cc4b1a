"""The PyTorch model: deterministic training, its hyperparameters reach it, its file is
safetensors, weights of another shape are refused, and the network prepares the features as
the schema says: missing values imputed, categories one-hot encoded, in ONNX as in PyTorch.
A regression task gets the same network with one output, trained on the standardised target,
whose values ONNX Runtime gives within the tolerance, or the native model serves, with the
reason."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from {{ cookiecutter.package_name }}.core.artifact import (
    METADATA_FILE,
    ArtifactError,
    load_artifact,
)
from {{ cookiecutter.package_name }}.core.model import (
    HYPERPARAMETERS,
    MODEL_FILE,
    Classifier,
    Regression,
    Regressor,
    build_model,
    read_model,
    write_model,
)
from {{ cookiecutter.package_name }}.core.predict import predict_matrix
from {{ cookiecutter.package_name }}.core.runtime import OnnxModel, OnnxRegressor
from {{ cookiecutter.package_name }}.core.schema import FEATURES, SCHEMA, Feature, Task
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
# The network's inputs: one per feature, one per category of a category feature.
INPUTS = sum(len(f.categories) or 1 for f in FEATURES)


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


@pytest.fixture(scope="module")
def mixed_model() -> Classifier:
    """A model of the MIXED schema fitted on its rows, once: training takes seconds."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_schema(monkeypatch, "multiclass")
        return fit(*mixed_rows(400, seed=0))


def fit(rows: np.ndarray, labels: np.ndarray) -> Classifier:
    model = build_model(DEFAULT_HYPERPARAMETERS)
    assert isinstance(model, Classifier)
    return model.fit(rows, labels)


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


# The project's own network's weights: a regressor's within its Regression.
PREFIX = "" if SCHEMA.is_classification else "network."


def test_the_same_data_and_seed_give_the_same_predictions() -> None:
    rows = training_data()[0].to_numpy()
    first, second = fitted(), fitted()
    np.testing.assert_array_equal(answers(first, rows), answers(second, rows))
    assert np.abs(answers(fitted(seed="7"), rows) - answers(first, rows)).max() > 0


def test_the_hidden_layer_size_reaches_the_model() -> None:
    assert HYPERPARAMETERS["hidden_units"] != 4
    weights = fitted(hidden_units="4").network.state_dict()
    assert tuple(weights[f"{PREFIX}layers.0.weight"].shape) == (4, INPUTS)


def test_the_model_file_is_safetensors(trained: Settings) -> None:
    weights = load_file(trained.model_dir / MODEL_FILE)
    classes = len(json.loads((trained.model_dir / METADATA_FILE).read_text())["classes"])
    outputs = classes or 1  # a regressor's one value
    hidden = int(HYPERPARAMETERS["hidden_units"])
    assert tuple(weights[f"{PREFIX}layers.0.weight"].shape) == (hidden, INPUTS)
    assert tuple(weights[f"{PREFIX}layers.2.weight"].shape) == (outputs, hidden)


def test_weights_of_another_shape_are_refused(trained: Settings, tmp_path: Path) -> None:
    metadata = json.loads((trained.model_dir / METADATA_FILE).read_text())
    (tmp_path / MODEL_FILE).write_bytes((trained.model_dir / MODEL_FILE).read_bytes())
    metadata["hyperparameters"]["hidden_units"] = 8
    (tmp_path / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match="size mismatch"):
        load_artifact(tmp_path, "native")  # the model file itself: the native runtime's


def test_numbers_none_missing_are_only_standardised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing to impute or encode: the network of before, its weights and buffers alone."""
    monkeypatch.setattr(f"{MODEL_MODULE}.FEATURES", NUMBERS_ONLY)
    monkeypatch.setattr(f"{MODEL_MODULE}.TASK", "binary")
    rows = np.arange(40, dtype=np.float64).reshape(20, 2)
    labels = np.array(["small", "large"])[(rows[:, 0] > 20).astype(int)]
    network = build_model({**DEFAULT_HYPERPARAMETERS, "epochs": 1}).fit(rows, labels).network
    assert network is not None
    assert not network.imputes and not network.encodes
    assert set(network.state_dict()) == {
        "mean",
        "scale",
        "layers.0.weight",
        "layers.0.bias",
        "layers.2.weight",
        "layers.2.bias",
    }


def test_a_missing_value_becomes_the_median_or_the_most_frequent_value(
    mixed: tuple[np.ndarray, np.ndarray], mixed_model: Classifier
) -> None:
    rows, labels = mixed
    model = mixed_model
    assert np.mean(model.predict(rows) == labels) > 0.9
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


def test_each_category_becomes_an_input_of_its_own(
    mixed: tuple[np.ndarray, np.ndarray], mixed_model: Classifier
) -> None:
    rows, _ = mixed
    network = mixed_model.network
    assert network is not None
    seen: list[torch.Tensor] = []
    hook = network.layers.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    complete = rows[~np.isnan(rows).any(axis=1)]
    with torch.inference_mode():
        network(torch.from_numpy(complete))
    hook.remove()
    # The numbers and the boolean first, then red, green, blue, round and square.
    (inputs,) = seen
    assert tuple(inputs.shape) == (len(complete), 3 + 3 + 2)
    one_hot = np.hstack(
        [np.eye(3)[complete[:, COLOUR].astype(int)], np.eye(2)[complete[:, SHAPE].astype(int)]]
    )
    np.testing.assert_array_equal(inputs[:, 3:].numpy(), one_hot)


def test_the_network_is_read_back_from_its_weights(
    mixed: tuple[np.ndarray, np.ndarray], mixed_model: Classifier, tmp_path: Path
) -> None:
    """The layout follows from the schema, the fill values come with the weights."""
    rows, _ = mixed
    model = mixed_model
    write_model(model, tmp_path / MODEL_FILE)
    metadata = {"hyperparameters": DEFAULT_HYPERPARAMETERS, "classes": list(model.classes_)}
    again = read_model(tmp_path / MODEL_FILE, metadata)
    np.testing.assert_array_equal(again.predict_proba(rows), model.predict_proba(rows))


def test_onnx_gives_the_models_answers_with_missing_values_and_categories(
    mixed: tuple[np.ndarray, np.ndarray], mixed_model: Classifier
) -> None:
    model = mixed_model
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


@pytest.fixture(scope="module")
def measured_model() -> Regressor:
    """A regressor of the MIXED features fitted on their values, once."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_schema(monkeypatch, "regression")
        return fit_regressor(*measured_rows(400, seed=0))


def fit_regressor(rows: np.ndarray, values: np.ndarray) -> Regressor:
    model = build_model(DEFAULT_HYPERPARAMETERS)
    assert isinstance(model, Regressor)
    return model.fit(rows, values)


def r_squared(values: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - np.sum((values - predicted) ** 2) / np.sum((values - values.mean()) ** 2))


def test_a_regression_gets_the_network_with_one_output(
    regression: tuple[np.ndarray, np.ndarray], measured_model: Regressor
) -> None:
    """The same layers, one output, and the target's mean and standard deviation kept beside
    them: the network learns the standardised target."""
    _, values = regression
    network = measured_model.network
    assert isinstance(network, Regression)
    weights = network.state_dict()
    hidden = int(DEFAULT_HYPERPARAMETERS["hidden_units"])
    assert tuple(weights["network.layers.2.weight"].shape) == (1, hidden)
    assert weights["target_mean"].item() == pytest.approx(values.mean())
    assert weights["target_scale"].item() == pytest.approx(values.std())
    held_out, truth = measured_rows(100, seed=1)
    predicted, probabilities = predict_matrix(measured_model, held_out)
    assert probabilities is None
    assert predicted.dtype == np.float64 and predicted.shape == (100,)
    assert r_squared(truth, predicted) > 0.8


def test_a_target_of_any_scale_trains_alike(regression: tuple[np.ndarray, np.ndarray]) -> None:
    """Standardised, the target in grams or in kilograms is the same target to the network:
    the same weights, values in the target's units."""
    rows, values = regression
    grams = fit_regressor(rows, values).predict(rows)
    kilograms = fit_regressor(rows, values / 1000).predict(rows)
    np.testing.assert_allclose(kilograms * 1000, grams, rtol=1e-6)


def test_a_regressor_imputes_a_missing_value_as_the_classifier_does(
    regression: tuple[np.ndarray, np.ndarray], measured_model: Regressor
) -> None:
    rows, _ = regression
    complete = rows[~np.isnan(rows).any(axis=1)][:20]
    fills = {
        SIZE: float(np.nanmedian(rows[:, SIZE])),
        FLAG: most_frequent(rows[:, FLAG]),
        COLOUR: most_frequent(rows[:, COLOUR]),
    }
    for j, fill in fills.items():
        missing, filled = complete.copy(), complete.copy()
        missing[:, j], filled[:, j] = np.nan, fill
        np.testing.assert_allclose(
            measured_model.predict(missing), measured_model.predict(filled), rtol=1e-12
        )


def test_onnx_gives_the_regressors_values_with_missing_values_and_categories(
    regression: tuple[np.ndarray, np.ndarray], measured_model: Regressor
) -> None:
    """Within TOLERANCE of the training target's standard deviation, on every row checked."""
    _, values = regression
    held_out, _ = measured_rows(100, seed=1)
    export = convert_and_check(measured_model, {"held-out": held_out}, values)
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
        onnx_values, measured_model.predict(held_out), rtol=0, atol=export.report["tolerance"]
    )


def test_onnx_values_that_differ_are_refused_with_the_reason(
    regression: tuple[np.ndarray, np.ndarray],
    measured_model: Regressor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A conversion that goes wrong (here: another model's) fails the check, and says by how
    much; training then saves the native model alone, which serves."""
    rows, values = regression
    other = fit_regressor(rows, values * 1.01)
    convert = onnx_convert.convert
    monkeypatch.setattr(
        "{{ cookiecutter.package_name }}.training.onnx_convert.convert",
        lambda _model, features: convert(other, features),
    )
    held_out, _ = measured_rows(100, seed=1)
    export = convert_and_check(measured_model, {"held-out": held_out}, values)
    assert export.content is None and export.report["verified"] is False
    assert export.report["reason"].startswith("values differ by up to ")
    assert export.report["max_abs_difference"] > 10 * export.report["tolerance"]


def test_the_regressor_is_read_back_from_its_weights_and_a_classifiers_are_refused(
    regression: tuple[np.ndarray, np.ndarray],
    measured_model: Regressor,
    mixed_model: Classifier,
    tmp_path: Path,
) -> None:
    """The target's mean and standard deviation come with the weights."""
    rows, _ = regression
    write_model(measured_model, tmp_path / MODEL_FILE)
    assert {"target_mean", "target_scale"} <= set(load_file(tmp_path / MODEL_FILE))
    metadata = {"hyperparameters": DEFAULT_HYPERPARAMETERS, "classes": []}
    again = read_model(tmp_path / MODEL_FILE, metadata)
    assert isinstance(again, Regressor)
    np.testing.assert_array_equal(again.predict(rows), measured_model.predict(rows))
    write_model(mixed_model, tmp_path / MODEL_FILE)
    with pytest.raises(RuntimeError, match="Missing key"):
        read_model(tmp_path / MODEL_FILE, metadata)
