"""The model: gradient-boosted trees with XGBoost, saved in XGBoost's JSON model format.

A classifier of the schema's classes, or a regressor when the schema's task is a regression
(squared error): `build_model()` chooses. Loading a JSON model runs no code, unlike pickle.
The file holds the trees and which features are categories: the class names come from
metadata.json. To use your own model, change `build_model()` and HYPERPARAMETERS.

The trees take the schema's encoding as it is: a missing value (NaN) follows each split's
learned default branch, and a category feature's codes are XGBoost's own categories, split
by sets of categories (no one-hot encoding).
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .schema import FEATURES, TASK, Feature

MODEL_FILE = "model.json"

# The model's hyperparameters and their defaults, the same for both tasks; a hyperparameters
# file overrides them.
HYPERPARAMETERS: dict[str, Any] = {"rounds": 50, "max_depth": 3, "learning_rate": 0.3}


class Classifier:
    """An XGBoost booster with the shape the rest of the project expects: `fit`, `predict`,
    `predict_proba` and `classes_` (labels in sorted order, as the probabilities' columns)."""

    def __init__(
        self, hyperparameters: Mapping[str, Any], classes: list[str] | None = None
    ) -> None:
        self.hyperparameters = hyperparameters
        self.classes_ = np.asarray(classes or [])
        self.booster: Any = None

    def fit(self, features: np.ndarray, target: np.ndarray) -> "Classifier":
        self.classes_, codes = np.unique(target, return_inverse=True)
        # Two classes: the logistic objective, one score per row (onnxmltools converts a
        # two-class softprob model into wrong probabilities).
        objective: dict[str, Any] = (
            {"objective": "binary:logistic"}
            if len(self.classes_) == 2
            else {"objective": "multi:softprob", "num_class": len(self.classes_)}
        )
        self.booster = train_booster(self.hyperparameters, objective, features, codes)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.booster.inplace_predict(features), dtype=np.float64)
        if scores.ndim == 1:  # the second class's probability
            return np.column_stack([1 - scores, scores])
        # XGBoost answers in float32: in float64, each row's probabilities sum to 1 again.
        probabilities = scores.reshape(len(features), -1)
        return np.asarray(probabilities / probabilities.sum(axis=1, keepdims=True))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(features).argmax(axis=1)])

    def restore(self, booster: Any, metadata: Mapping[str, Any]) -> None:
        """Take a booster read from a file, which must score the classes metadata.json names."""
        config = json.loads(booster.save_config())
        outputs = int(config["learner"]["learner_model_param"]["num_class"])
        if config["learner"]["objective"]["name"] == "binary:logistic":
            outputs = 2  # one score per row, the second class's probability
        classes = list(metadata["classes"])
        if outputs != len(classes):
            raise ValueError(f"it scores {outputs} classes and metadata.json names {len(classes)}")
        self.classes_, self.booster = np.asarray(classes), booster


class Regressor:
    """An XGBoost booster that predicts a number, trained on the squared error: `fit`, and
    `predict` giving float64 values."""

    def __init__(self, hyperparameters: Mapping[str, Any]) -> None:
        self.hyperparameters = hyperparameters
        self.booster: Any = None

    def fit(self, features: np.ndarray, target: np.ndarray) -> "Regressor":
        values = np.asarray(target, dtype=np.float64)
        objective = {"objective": "reg:squarederror"}
        self.booster = train_booster(self.hyperparameters, objective, features, values)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        values = self.booster.inplace_predict(features)  # float32, as XGBoost computes
        return np.asarray(values, dtype=np.float64).reshape(len(features))

    def restore(self, booster: Any, metadata: Mapping[str, Any]) -> None:
        """Take a booster read from a file, which must be a regression's."""
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        if not objective.startswith("reg:"):
            raise ValueError(f"its objective is {objective}, not a regression's (reg:...)")
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
    import xgboost

    return xgboost.train(
        {
            **objective,
            "max_depth": int(hyperparameters["max_depth"]),
            "learning_rate": float(hyperparameters["learning_rate"]),
            "seed": int(hyperparameters["seed"]),
            "tree_method": "hist",
        },
        xgboost.DMatrix(
            features,
            label=target,
            feature_types=feature_types(FEATURES),
            enable_categorical=True,
        ),
        num_boost_round=int(hyperparameters["rounds"]),
    )


def feature_types(features: Sequence[Feature]) -> list[str] | None:
    """XGBoost's type of each feature: "c" for a category, "q" (quantitative) for the others;
    None, XGBoost's default, when there is no category."""
    if not any(f.type == "category" for f in features):
        return None
    return ["c" if f.type == "category" else "q" for f in features]


def library_versions() -> dict[str, str]:
    """The versions that wrote the model, for metadata.json."""
    import xgboost

    return {"xgboost": xgboost.__version__}


def prepare_model_thread() -> None:
    """Nothing to set up: XGBoost keeps no per-thread settings."""


def write_model(model: Classifier | Regressor, path: Path) -> None:
    model.booster.save_model(path)


def read_model(path: Path, metadata: Mapping[str, Any]) -> Any:
    """The booster in `path`, as the model of the schema's task: a classifier's with the
    class names metadata.json records for it."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(path)
    model: Classifier | Regressor = build_model(metadata["hyperparameters"])
    model.restore(booster, metadata)
    expected = feature_types(FEATURES)
    if booster.feature_types != expected:
        raise ValueError(
            f"its feature types are {booster.feature_types}, and the schema's {expected} "
            '("c": a category)'
        )
    return model
