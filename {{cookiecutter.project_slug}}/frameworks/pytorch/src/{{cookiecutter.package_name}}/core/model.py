"""The model: a small multilayer perceptron in PyTorch, its weights saved in safetensors.

A safetensors file holds tensors only, so loading it runs no code, unlike pickle. The
architecture lives here, in `Network`; its hyperparameters, the feature order and the class
names live in metadata.json. Training is seeded and runs PyTorch's deterministic algorithms:
the same data and hyperparameters give the same weights and the same predictions. To use your
own model, change `Network`, `build_model()` and HYPERPARAMETERS.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

MODEL_FILE = "model.safetensors"

# The model's hyperparameters and their defaults; a hyperparameters file overrides them.
HYPERPARAMETERS: dict[str, Any] = {"hidden_units": 16, "epochs": 300, "learning_rate": 0.05}


class Network(torch.nn.Module):
    """Standardised features, one hidden layer, one logit per class (float64 throughout)."""

    def __init__(self, features: int, hidden_units: int, classes: int) -> None:
        super().__init__()
        # Buffers, not parameters: fixed from the training data, saved with the weights.
        self.register_buffer("mean", torch.zeros(features, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(features, dtype=torch.float64))
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(features, hidden_units, dtype=torch.float64),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden_units, classes, dtype=torch.float64),
        )

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        standardised = (rows - self.get_buffer("mean")) / self.get_buffer("scale")
        logits: torch.Tensor = self.layers(standardised)
        return logits


class Classifier:
    """The network with the shape the rest of the project expects: `fit`, `predict`,
    `predict_proba` and `classes_` (labels in sorted order, as the probabilities' columns)."""

    def __init__(
        self, hyperparameters: Mapping[str, Any], classes: list[str] | None = None
    ) -> None:
        self.hyperparameters = hyperparameters
        self.classes_ = np.asarray(classes or [])
        self.network: Network | None = None

    def fit(self, features: np.ndarray, target: np.ndarray) -> "Classifier":
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(int(self.hyperparameters["seed"]))
        self.classes_, codes = np.unique(target, return_inverse=True)
        rows = torch.from_numpy(np.asarray(features, dtype=np.float64))
        labels = torch.from_numpy(codes.astype(np.int64))
        network = self.network = self._network(rows.shape[1])
        network.get_buffer("mean").copy_(rows.mean(dim=0))
        network.get_buffer("scale").copy_(rows.std(dim=0).clamp(min=1e-12))
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

    def _network(self, features: int) -> Network:
        hidden_units = int(self.hyperparameters["hidden_units"])
        return Network(features, hidden_units, len(self.classes_))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        assert self.network is not None, "fit or read the model first"
        expected = self.network.get_buffer("mean").shape[0]
        if features.ndim != 2 or features.shape[1] != expected:
            raise ValueError(f"expected rows of {expected} features, got shape {features.shape}")
        with torch.inference_mode():
            rows = torch.from_numpy(np.asarray(features, dtype=np.float64))
            return np.asarray(self.network(rows).softmax(dim=1).numpy(), dtype=np.float64)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(features).argmax(axis=1)])


def build_model(hyperparameters: Mapping[str, Any]) -> Classifier:
    """A fresh, unfitted model. Hyperparameters arrive as strings from SageMaker."""
    return Classifier(hyperparameters)


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
    """The network that metadata.json describes, with the weights in `path`; refused when they
    do not fit it (another architecture, other features or classes)."""
    from safetensors.torch import load_file

    weights = load_file(path)
    model = Classifier(metadata["hyperparameters"], classes=list(metadata["classes"]))
    network = model._network(len(metadata["features"]))
    network.load_state_dict(weights, strict=True)
    network.eval()
    model.network = network
    return model
