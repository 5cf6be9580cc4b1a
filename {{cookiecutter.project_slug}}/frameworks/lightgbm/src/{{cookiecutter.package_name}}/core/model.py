"""The model: gradient-boosted trees with LightGBM, saved in LightGBM's text model format.

Loading a text model runs no code, unlike pickle. The file holds the trees only: the class
names come from metadata.json. To use your own model, change `build_model()` and
HYPERPARAMETERS.

The trees take the schema's encoding as it is: a missing value (NaN) follows each split's
learned default branch, and a category feature's codes are LightGBM's own categorical
feature, split by sets of categories (no one-hot encoding).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .schema import FEATURES

MODEL_FILE = "model.txt"

# The model's hyperparameters and their defaults; a hyperparameters file overrides them.
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
        import lightgbm

        self.classes_, codes = np.unique(target, return_inverse=True)
        self.booster = lightgbm.train(
            {
                "objective": "multiclass",
                "num_class": len(self.classes_),
                "num_leaves": int(self.hyperparameters["num_leaves"]),
                "learning_rate": float(self.hyperparameters["learning_rate"]),
                "min_data_in_leaf": int(self.hyperparameters["min_data_in_leaf"]),
                "seed": int(self.hyperparameters["seed"]),
                # The same data and seed give the same trees, whatever the thread count.
                "deterministic": True,
                "force_row_wise": True,
                "verbosity": -1,
            },
            lightgbm.Dataset(
                features,
                label=codes,
                feature_name=[f.name for f in FEATURES],
                categorical_feature=[f.name for f in FEATURES if f.type == "category"],
            ),
            num_boost_round=int(self.hyperparameters["rounds"]),
        )
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        import lightgbm

        try:
            probabilities = self.booster.predict(features)
        except lightgbm.basic.LightGBMError as error:  # rows of the wrong width, for one
            raise ValueError(str(error)) from error
        return np.asarray(probabilities, dtype=np.float64).reshape(len(features), -1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(features).argmax(axis=1)])


def build_model(hyperparameters: Mapping[str, Any]) -> Classifier:
    """A fresh, unfitted model. Hyperparameters arrive as strings from SageMaker."""
    return Classifier(hyperparameters)


def library_versions() -> dict[str, str]:
    """The versions that wrote the model, for metadata.json."""
    import lightgbm

    return {"lightgbm": lightgbm.__version__}


def prepare_model_thread() -> None:
    """Nothing to set up: LightGBM keeps no per-thread settings."""


def write_model(model: Classifier, path: Path) -> None:
    model.booster.save_model(path)


def read_model(path: Path, metadata: Mapping[str, Any]) -> Classifier:
    """The booster in `path`, with the class names metadata.json records for it."""
    import lightgbm

    booster = lightgbm.Booster(model_file=path)
    model = Classifier(metadata["hyperparameters"], classes=list(metadata["classes"]))
    outputs = booster.num_model_per_iteration()
    if outputs != len(model.classes_):
        raise ValueError(
            f"it scores {outputs} classes and metadata.json names {len(model.classes_)}"
        )
    names = [f.name for f in FEATURES]
    if booster.feature_name() != names:
        raise ValueError(f"its features are {booster.feature_name()}, not {names}")
    model.booster = booster
    return model
