"""The model: gradient-boosted trees with XGBoost, saved in XGBoost's JSON model format.

Loading a JSON model runs no code, unlike pickle. The file holds the trees and which features
are categories: the class names come from metadata.json. To use your own model, change
`build_model()` and HYPERPARAMETERS.

The trees take the schema's encoding as it is: a missing value (NaN) follows each split's
learned default branch, and a category feature's codes are XGBoost's own categories, split
by sets of categories (no one-hot encoding).
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .schema import FEATURES, Feature

MODEL_FILE = "model.json"

# The model's hyperparameters and their defaults; a hyperparameters file overrides them.
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
        import xgboost

        self.classes_, codes = np.unique(target, return_inverse=True)
        self.booster = xgboost.train(
            {
                "objective": "multi:softprob",
                "num_class": len(self.classes_),
                "max_depth": int(self.hyperparameters["max_depth"]),
                "learning_rate": float(self.hyperparameters["learning_rate"]),
                "seed": int(self.hyperparameters["seed"]),
                "tree_method": "hist",
            },
            xgboost.DMatrix(
                features,
                label=codes,
                feature_types=feature_types(FEATURES),
                enable_categorical=True,
            ),
            num_boost_round=int(self.hyperparameters["rounds"]),
        )
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        scores = self.booster.inplace_predict(features)
        # XGBoost answers in float32: in float64, each row's probabilities sum to 1 again.
        probabilities = np.asarray(scores, dtype=np.float64).reshape(len(features), -1)
        return np.asarray(probabilities / probabilities.sum(axis=1, keepdims=True))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(features).argmax(axis=1)])


def build_model(hyperparameters: Mapping[str, Any]) -> Classifier:
    """A fresh, unfitted model. Hyperparameters arrive as strings from SageMaker."""
    return Classifier(hyperparameters)


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


def write_model(model: Classifier, path: Path) -> None:
    model.booster.save_model(path)


def read_model(path: Path, metadata: Mapping[str, Any]) -> Classifier:
    """The booster in `path`, with the class names metadata.json records for it."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(path)
    config = json.loads(booster.save_config())
    outputs = int(config["learner"]["learner_model_param"]["num_class"])
    model = Classifier(metadata["hyperparameters"], classes=list(metadata["classes"]))
    if outputs != len(model.classes_):
        raise ValueError(
            f"it scores {outputs} classes and metadata.json names {len(model.classes_)}"
        )
    expected = feature_types(FEATURES)
    if booster.feature_types != expected:
        raise ValueError(
            f"its feature types are {booster.feature_types}, and the schema's {expected} "
            '("c": a category)'
        )
    model.booster = booster
    return model
