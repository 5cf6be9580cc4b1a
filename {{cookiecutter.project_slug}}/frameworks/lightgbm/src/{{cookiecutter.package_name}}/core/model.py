"""The model: gradient-boosted trees with LightGBM, saved in LightGBM's text model format.

A classifier of the schema's classes, or a regressor when the schema's task is a regression
(squared error): `build_model()` chooses. Loading a text model runs no code, unlike pickle.
The file holds the trees only: the class names come from metadata.json. To use your own
model, change `build_model()` and HYPERPARAMETERS.

The trees take the schema's encoding as it is: a missing value (NaN) follows each split's
learned default branch, and a category feature's codes are LightGBM's own categorical
feature, split by sets of categories (no one-hot encoding).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .schema import FEATURES, TASK

MODEL_FILE = "model.txt"

# The model's hyperparameters and their defaults, the same for both tasks; a hyperparameters
# file overrides them.
HYPERPARAMETERS: dict[str, Any] = {
    "rounds": 50,
    "num_leaves": 7,
    "learning_rate": 0.1,
    "min_data_in_leaf": 10,
}


class Classifier:
    """A LightGBM booster with the shape the rest of the project expects: `fit`, `predict`,
    `predict_proba` and `classes_` (labels in sorted order, as the probabilities' columns)."""

    def __init__(
        self, hyperparameters: Mapping[str, Any], classes: list[str] | None = None
    ) -> None:
        self.hyperparameters = hyperparameters
        self.classes_ = np.asarray(classes or [])
        self.booster: Any = None

    def fit(self, features: np.ndarray, target: np.ndarray) -> "Classifier":
        self.classes_, codes = np.unique(target, return_inverse=True)
        objective = {"objective": "multiclass", "num_class": len(self.classes_)}
        self.booster = train_booster(self.hyperparameters, objective, features, codes)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        probabilities = booster_predict(self.booster, features)
        return np.asarray(probabilities, dtype=np.float64).reshape(len(features), -1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(features).argmax(axis=1)])

    def restore(self, booster: Any, metadata: Mapping[str, Any]) -> None:
        """Take a booster read from a file, which must score the classes metadata.json names."""
        outputs = booster.num_model_per_iteration()
        classes = list(metadata["classes"])
        if outputs != len(classes):
            raise ValueError(f"it scores {outputs} classes and metadata.json names {len(classes)}")
        self.classes_, self.booster = np.asarray(classes), booster


class Regressor:
    """A LightGBM booster that predicts a number, trained on the squared error: `fit`, and
    `predict` giving float64 values."""

    def __init__(self, hyperparameters: Mapping[str, Any]) -> None:
        self.hyperparameters = hyperparameters
        self.booster: Any = None

    def fit(self, features: np.ndarray, target: np.ndarray) -> "Regressor":
        values = np.asarray(target, dtype=np.float64)
        objective = {"objective": "regression"}
        self.booster = train_booster(self.hyperparameters, objective, features, values)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        values = booster_predict(self.booster, features)
        return np.asarray(values, dtype=np.float64).reshape(len(features))

    def restore(self, booster: Any, metadata: Mapping[str, Any]) -> None:
        """Take a booster read from a file, which must give one value a row."""
        outputs = booster.num_model_per_iteration()
        if outputs != 1:
            raise ValueError(f"it scores {outputs} classes, and a regressor gives one value")
        self.booster = booster


def build_model(hyperparameters: Mapping[str, Any]) -> Any:
    """A fresh, unfitted model for the schema's task: a Classifier, or a Regressor for a
    regression (typed Any: training and the prediction core use either through the methods
    of its task). Hyperparameters arrive as strings from SageMaker."""
    if TASK == "regression":
        return Regressor(hyperparameters)
    return Classifier(hyperparameters)


def train_booster(
    hyperparameters: Mapping[str, Any],
    objective: Mapping[str, Any],
    features: np.ndarray,
    target: np.ndarray,
) -> Any:
    """Boosted trees fitted to `target` (class codes or values) under `objective`."""
    import lightgbm

    return lightgbm.train(
        {
            **objective,
            "num_leaves": int(hyperparameters["num_leaves"]),
            "learning_rate": float(hyperparameters["learning_rate"]),
            "min_data_in_leaf": int(hyperparameters["min_data_in_leaf"]),
            "seed": int(hyperparameters["seed"]),
            # The same data and seed give the same trees, whatever the thread count.
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        },
        lightgbm.Dataset(
            features,
            label=target,
            feature_name=[f.name for f in FEATURES],
            categorical_feature=[f.name for f in FEATURES if f.type == "category"],
        ),
        num_boost_round=int(hyperparameters["rounds"]),
    )


def booster_predict(booster: Any, features: np.ndarray) -> Any:
    """The booster's answers for the rows; ValueError for rows it cannot take."""
    import lightgbm

    try:
        return booster.predict(features)
    except lightgbm.basic.LightGBMError as error:  # rows of the wrong width, for one
        raise ValueError(str(error)) from error


def library_versions() -> dict[str, str]:
    """The versions that wrote the model, for metadata.json."""
    import lightgbm

    return {"lightgbm": lightgbm.__version__}


def prepare_model_thread() -> None:
    """Nothing to set up: LightGBM keeps no per-thread settings."""


def write_model(model: Classifier | Regressor, path: Path) -> None:
    model.booster.save_model(path)


def read_model(path: Path, metadata: Mapping[str, Any]) -> Any:
    """The booster in `path`, as the model of the schema's task: a classifier's with the
    class names metadata.json records for it."""
    import lightgbm

    booster = lightgbm.Booster(model_file=path)
    model: Classifier | Regressor = build_model(metadata["hyperparameters"])
    model.restore(booster, metadata)
    names = [f.name for f in FEATURES]
    if booster.feature_name() != names:
        raise ValueError(f"its features are {booster.feature_name()}, not {names}")
    return model
