"""The model: a small multilayer perceptron in PyTorch, its weights saved in safetensors.

A classifier of the schema's classes (one logit per class, trained on the cross-entropy), or
a regressor when the schema's task is a regression (one output, trained on the squared error
of the standardised target): `build_model()` chooses. A safetensors file holds tensors only,
so loading it runs no code, unlike pickle. The architecture lives here, in `Network`, laid
out by the schema's features; its hyperparameters and the class names live in metadata.json.
Training is seeded and runs PyTorch's deterministic algorithms: the same data and
hyperparameters give the same weights and the same predictions. To use your own model,
change `Network`, `build_model()` and HYPERPARAMETERS.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .schema import FEATURES, TASK, Feature

MODEL_FILE = "model.safetensors"

# The model's hyperparameters and their defaults; a hyperparameters file overrides them. Both
# tasks take the same ones, and a regressor's defaults train less: the squared error of a
# noisy target overfits sooner than the cross-entropy (with the classifier's, a regressor of
# scikit-learn's diabetes data does worse on held-out rows than predicting the mean).
HYPERPARAMETERS: dict[str, Any] = (
    {"hidden_units": 16, "epochs": 100, "learning_rate": 0.01}
    if TASK == "regression"
    else {"hidden_units": 16, "epochs": 300, "learning_rate": 0.05}
)


class Network(torch.nn.Module):
    """Rows in the schema's encoding (category codes, NaN for a missing value) in, `outputs`
    numbers out (one logit per class, or a regression's standardised value; float64
    throughout): missing values imputed, numbers and booleans standardised, each category
    one-hot encoded (a 0/1 input per category), then one hidden layer. A schema of numbers
    with none missing skips the imputing and the encoding."""

    def __init__(self, features: Sequence[Feature], hidden_units: int, outputs: int) -> None:
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
            torch.nn.Linear(hidden_units, outputs, dtype=torch.float64),
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


class Regression(torch.nn.Module):
    """A network of one output, in the target's units: the network learns the standardised
    target (mean 0, standard deviation 1), so that a target of any scale trains with the same
    learning rate; its mean and standard deviation are buffers, saved with the weights."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("target_mean", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("target_scale", torch.ones(1, dtype=torch.float64))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        standardised: torch.Tensor = self.network(rows)
        return standardised * self.get_buffer("target_scale") + self.get_buffer("target_mean")


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
        seed(self.hyperparameters)
        self.classes_, codes = np.unique(target, return_inverse=True)
        labels = torch.from_numpy(codes.astype(np.int64))
        network = self.network = self._network()
        loss = torch.nn.CrossEntropyLoss()
        train_network(network, self.features, features, labels, loss, self.hyperparameters)
        return self

    def _network(self) -> Network:
        hidden_units = int(self.hyperparameters["hidden_units"])
        return Network(self.features, hidden_units, len(self.classes_))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        assert self.network is not None, "fit or read the model first"
        check_width(features, len(self.features))
        with torch.inference_mode():
            rows = torch.from_numpy(np.asarray(features, dtype=np.float64))
            return np.asarray(self.network(rows).softmax(dim=1).numpy(), dtype=np.float64)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(features).argmax(axis=1)])

    def restore(self, weights: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> None:
        """Take the weights read from a file, for the classes metadata.json names."""
        self.classes_ = np.asarray(list(metadata["classes"]))
        network = self._network()
        network.load_state_dict(weights, strict=True)
        self.network = network.eval()


class Regressor:
    """The network of one output, in the target's units (`Regression`): `fit`, and `predict`
    giving float64 values."""

    def __init__(self, hyperparameters: Mapping[str, Any], features: Sequence[Feature]) -> None:
        self.hyperparameters = hyperparameters
        self.features = tuple(features)
        self.network: Regression | None = None

    def fit(self, features: np.ndarray, target: np.ndarray) -> "Regressor":
        seed(self.hyperparameters)
        values = torch.from_numpy(np.array(target, dtype=np.float64).reshape(-1, 1))
        model = self.network = self._network()
        mean, scale = values.mean(), values.std(correction=0).clamp(min=1e-12)
        model.get_buffer("target_mean").fill_(mean)
        model.get_buffer("target_scale").fill_(scale)
        loss = torch.nn.MSELoss()
        standardised = (values - mean) / scale
        train_network(
            model.network, self.features, features, standardised, loss, self.hyperparameters
        )
        model.eval()
        return self

    def _network(self) -> Regression:
        hidden_units = int(self.hyperparameters["hidden_units"])
        return Regression(Network(self.features, hidden_units, 1))

    def predict(self, features: np.ndarray) -> np.ndarray:
        assert self.network is not None, "fit or read the model first"
        check_width(features, len(self.features))
        with torch.inference_mode():
            rows = torch.from_numpy(np.asarray(features, dtype=np.float64))
            return np.asarray(self.network(rows).numpy(), dtype=np.float64).reshape(len(rows))

    def restore(self, weights: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> None:
        """Take the weights read from a file, the target's mean and scale among them."""
        network = self._network()
        network.load_state_dict(weights, strict=True)
        self.network = network.eval()


def build_model(hyperparameters: Mapping[str, Any]) -> Any:
    """A fresh, unfitted model for the schema's features and task: a Classifier, or a
    Regressor for a regression (typed Any: training and the prediction core use either through
    the methods of its task). Hyperparameters arrive as strings from SageMaker."""
    if TASK == "regression":
        return Regressor(hyperparameters, FEATURES)
    return Classifier(hyperparameters, FEATURES)


def seed(hyperparameters: Mapping[str, Any]) -> None:
    """Deterministic algorithms and the seed, before a network's weights are drawn."""
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(int(hyperparameters["seed"]))


def train_network(
    network: Network,
    features: Sequence[Feature],
    matrix: np.ndarray,
    target: torch.Tensor,
    loss: torch.nn.Module,
    hyperparameters: Mapping[str, Any],
) -> None:
    """Fix the network's buffers from the rows (fill values, the numbers' mean and scale),
    then fit its weights to `target` under `loss`, full batch: the data is small."""
    rows = torch.from_numpy(np.array(matrix, dtype=np.float64))  # a copy: writable
    if network.imputes:
        fill = fill_values(rows.numpy(), features)
        network.get_buffer("fill").copy_(torch.from_numpy(fill))
    numbers = network.impute(rows)[:, network.get_buffer("numbers")]
    network.get_buffer("mean").copy_(numbers.mean(dim=0))
    network.get_buffer("scale").copy_(numbers.std(dim=0).clamp(min=1e-12))
    optimizer = torch.optim.Adam(network.parameters(), lr=float(hyperparameters["learning_rate"]))
    network.train()
    for _ in range(int(hyperparameters["epochs"])):
        optimizer.zero_grad()
        loss(network(rows), target).backward()
        optimizer.step()
    network.eval()


def check_width(features: np.ndarray, expected: int) -> None:
    if features.ndim != 2 or features.shape[1] != expected:
        raise ValueError(f"expected rows of {expected} features, got shape {features.shape}")


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


def write_model(model: Classifier | Regressor, path: Path) -> None:
    from safetensors.torch import save_file

    assert model.network is not None, "fit the model first"
    save_file(model.network.state_dict(), path)


def read_model(path: Path, metadata: Mapping[str, Any]) -> Any:
    """The network for the schema's features and task that metadata.json describes, with the
    weights in `path`; refused when they do not fit it (another architecture, other features,
    classes or task). Loading the artifact has checked that the model's schema is this one."""
    from safetensors.torch import load_file

    weights = load_file(path)
    model: Classifier | Regressor = build_model(metadata["hyperparameters"])
    model.restore(weights, metadata)
    return model
