"""The model: a small multilayer perceptron in PyTorch, its weights saved in safetensors.

A safetensors file holds tensors only, so loading it runs no code, unlike pickle. The
architecture lives here, in `Network`, laid out by the schema's features; its hyperparameters
and the class names live in metadata.json. Training is seeded and runs PyTorch's deterministic algorithms: the
same data and hyperparameters give the same weights and the same predictions. To use your own
model, change `Network`, `build_model()` and HYPERPARAMETERS.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .schema import FEATURES, Feature

MODEL_FILE = "model.safetensors"

# The model's hyperparameters and their defaults; a hyperparameters file overrides them.
HYPERPARAMETERS: dict[str, Any] = {"hidden_units": 16, "epochs": 300, "learning_rate": 0.05}


class Network(torch.nn.Module):
    """Rows in the schema's encoding (category codes, NaN for a missing value) in, one logit
    per class out (float64 throughout): missing values imputed, numbers and booleans
    standardised, each category one-hot encoded (a 0/1 input per category), then one hidden
    layer. A schema of numbers with none missing skips the imputing and the encoding."""

    def __init__(self, features: Sequence[Feature], hidden_units: int, classes: int) -> None:
        super().__init__()
        numbers = [j for j, f in enumerate(features) if f.type != "category"]
        # Each category feature's column once per category, beside that category's code.
        one_hot = [(j, code) for j, f in enumerate(features) for code in range(len(f.categories))]
        self.imputes = any(f.nullable for f in features)
        self.encodes = bool(one_hot)
        # Buffers, not parameters: fixed from the training data, saved with the weights.
        if self.imputes:
            self.register_buffer("fill", torch.zeros(len(features), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(len(numbers), dtype=torch.float64))
        self.register_buffer("scale", torch.ones(len(numbers), dtype=torch.float64))
        # The layout, which follows from the features: not saved.
        columns, codes = [j for j, _ in one_hot], [float(code) for _, code in one_hot]
        for name, values, dtype in (
            ("numbers", numbers, torch.int64),
            ("one_hot_columns", columns, torch.int64),
            ("one_hot_codes", codes, torch.float64),
        ):
            self.register_buffer(name, torch.tensor(values, dtype=dtype), persistent=False)
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(len(numbers) + len(one_hot), hidden_units, dtype=torch.float64),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden_units, classes, dtype=torch.float64),
        )

    def impute(self, rows: torch.Tensor) -> torch.Tensor:
        if not self.imputes:
            return rows
        return torch.where(rows.isnan(), self.get_buffer("fill"), rows)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        rows = self.impute(rows)
        mean, scale = self.get_buffer("mean"), self.get_buffer("scale")
        if not self.encodes:
            inputs = (rows - mean) / scale
        else:
            numbers = (rows[:, self.get_buffer("numbers")] - mean) / scale
            categories = rows[:, self.get_buffer("one_hot_columns")]
            one_hot = (categories == self.get_buffer("one_hot_codes")).to(torch.float64)
            inputs = torch.cat([numbers, one_hot], dim=1)
        logits: torch.Tensor = self.layers(inputs)
        return logits


class Classifier:
    """The network with the shape the rest of the project expects: `fit`, `predict`,
    `predict_proba` and `classes_` (labels in sorted order, as the probabilities' columns)."""

    def __init__(
        self,
        hyperparameters: Mapping[str, Any],
        features: Sequence[Feature],
        classes: list[str] | None = None,
    ) -> None:
        self.hyperparameters = hyperparameters
        self.features = tuple(features)
        self.classes_ = np.asarray(classes or [])
        self.network: Network | None = None

    def fit(self, features: np.ndarray, target: np.ndarray) -> "Classifier":
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(int(self.hyperparameters["seed"]))
        self.classes_, codes = np.unique(target, return_inverse=True)
        rows = torch.from_numpy(np.array(features, dtype=np.float64))  # a copy: writable
        labels = torch.from_numpy(codes.astype(np.int64))
        network = self.network = self._network()
        if network.imputes:
            fill = fill_values(rows.numpy(), self.features)
            network.get_buffer("fill").copy_(torch.from_numpy(fill))
        numbers = network.impute(rows)[:, network.get_buffer("numbers")]
        network.get_buffer("mean").copy_(numbers.mean(dim=0))
        network.get_buffer("scale").copy_(numbers.std(dim=0).clamp(min=1e-12))
        optimizer = torch.optim.Adam(
            network.parameters(), lr=float(self.hyperparameters["learning_rate"])
        )
        loss = torch.nn.CrossEntropyLoss()
        network.train()
        for _ in range(int(self.hyperparameters["epochs"])):  # full batch: the data is small
            optimizer.zero_grad()
            loss(network(rows), labels).backward()
            optimizer.step()
        network.eval()
        return self

    def _network(self) -> Network:
        hidden_units = int(self.hyperparameters["hidden_units"])
        return Network(self.features, hidden_units, len(self.classes_))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        assert self.network is not None, "fit or read the model first"
        expected = len(self.features)
        if features.ndim != 2 or features.shape[1] != expected:
            raise ValueError(f"expected rows of {expected} features, got shape {features.shape}")
        with torch.inference_mode():
            rows = torch.from_numpy(np.asarray(features, dtype=np.float64))
            return np.asarray(self.network(rows).softmax(dim=1).numpy(), dtype=np.float64)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(features).argmax(axis=1)])


def build_model(hyperparameters: Mapping[str, Any]) -> Classifier:
    """A fresh, unfitted model for the schema's features. Hyperparameters arrive as strings
    from SageMaker."""
    return Classifier(hyperparameters, FEATURES)


def fill_values(rows: np.ndarray, features: Sequence[Feature]) -> np.ndarray:
    """What a missing value of each column becomes: a number's median, a boolean's or a
    category's most frequent value; 0 for a column missing in every row."""
    fill = np.zeros(len(features))
    for j, feature in enumerate(features):
        present = rows[~np.isnan(rows[:, j]), j]
        if not len(present):
            continue
        if feature.type in ("number", "integer"):
            fill[j] = np.median(present)
        else:
            values, counts = np.unique(present, return_counts=True)
            fill[j] = values[counts.argmax()]  # the smallest, when several are as frequent
    return fill


def library_versions() -> dict[str, str]:
    """The versions that wrote the model, for metadata.json."""
    import safetensors

    return {"torch": torch.__version__, "safetensors": safetensors.__version__}


def prepare_model_thread() -> None:
    """Nothing to set up: inference runs under torch.inference_mode() in each call."""


def write_model(model: Classifier, path: Path) -> None:
    from safetensors.torch import save_file

    assert model.network is not None, "fit the model first"
    save_file(model.network.state_dict(), path)


def read_model(path: Path, metadata: Mapping[str, Any]) -> Classifier:
    """The network for the schema's features that metadata.json describes, with the weights in
    `path`; refused when they do not fit it (another architecture, other features or
    classes). Loading the artifact has checked that the model's schema is this one."""
    from safetensors.torch import load_file

    weights = load_file(path)
    model = Classifier(metadata["hyperparameters"], FEATURES, list(metadata["classes"]))
    network = model._network()
    network.load_state_dict(weights, strict=True)
    network.eval()
    model.network = network
    return model
