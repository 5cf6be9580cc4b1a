"""The two runtimes of the prediction core: ONNX Runtime and the training framework itself.

Both give the prediction core the same small interface: a classifier's `classes_`,
`predict_proba(matrix)` and `predict(matrix)` (labels), a regressor's `predict(matrix)`
(values). Which one serves is decided here, from the artifact's metadata.json and the
MODEL_RUNTIME setting, never from the framework:

- `auto` (the default): ONNX Runtime when training verified the ONNX model against the native
  one, else the native model, with the reason;
- `onnx`: ONNX Runtime, or a configuration error when there is no verified ONNX model;
- `native`: the training framework's own model.

The ONNX path imports ONNX Runtime and NumPy only: the training framework is never imported,
which is what makes start-up fast and lets the slim serving image leave it out.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .schema import Task

RuntimeSetting = Literal["auto", "onnx", "native"]

ONNX_FILE = "model.onnx"
# Every exported model has one input of shape [rows, features]. A classifier's has the
# output ONNX_OUTPUT of shape [rows, classes] (the labels are the classes of the largest
# probabilities); a regressor's, the output ONNX_VALUES of shape [rows, 1].
ONNX_INPUT_RANK = 2
ONNX_OUTPUT = "probabilities"
ONNX_VALUES = "values"
ONNX_TYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


class RuntimeSettingError(ValueError):
    """MODEL_RUNTIME asks for a runtime this artifact or this image cannot give."""


@dataclass(frozen=True)
class Choice:
    name: Literal["onnx", "native"]
    reason: str | None  # why the native model serves under `auto`, else None


def choose(metadata: Mapping[str, Any], setting: RuntimeSetting) -> Choice:
    """The runtime for an artifact with this metadata, under the MODEL_RUNTIME setting."""
    onnx = metadata.get("onnx") or {}
    verified = bool(onnx.get("verified"))
    if setting == "native":
        return Choice("native", "MODEL_RUNTIME=native")
    if verified:
        return Choice("onnx", None)
    why = onnx.get("reason") or "the model was trained without an ONNX export"
    if setting == "onnx":
        raise RuntimeSettingError(
            f"MODEL_RUNTIME=onnx, but this model has no verified ONNX model: {why}. "
            "Unset MODEL_RUNTIME (or set it to auto) to serve the native model."
        )
    return Choice("native", f"no verified ONNX model: {why}")


def onnx_model(
    source: Path | bytes, features: int, classes: list[str], task: Task
) -> "OnnxModel | OnnxRegressor":
    """The ONNX model of an artifact of this task: a regressor's, or a classifier's of
    `classes`. ValueError when the model's inputs or outputs do not fit."""
    if task == "regression":
        return OnnxRegressor(source, features)
    return OnnxModel(source, features, classes)


class OnnxModel:
    """A verified ONNX classifier in ONNX Runtime, with the prediction core's interface.

    One thread per model call: the models this serves are small, requests are gathered into
    batches, and the event loop and the other core stay free. Infinity is refused before a
    matrix gets here, and so is NaN outside the schema's nullable columns (in those, the
    graph handles it as the native model does); values too large for a float32 input become
    infinite and give non-finite probabilities, which the prediction core refuses like the
    native model's.
    """

    def __init__(self, source: Path | bytes, features: int, classes: list[str]) -> None:
        self.session, self.input_name, self.input_type = open_session(source, features)
        self.classes_ = np.asarray(classes)
        columns = output_columns(self.session, ONNX_OUTPUT)
        if isinstance(columns, int) and columns != len(classes):
            raise ValueError(
                f"it gives {columns} probabilities, and metadata.json names {len(classes)} classes"
            )
        self.features = features

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.ndim != ONNX_INPUT_RANK or matrix.shape[1] != self.features:
            raise ValueError(f"expected rows of {self.features} features, got shape {matrix.shape}")
        rows = np.ascontiguousarray(matrix, dtype=self.input_type)
        (probabilities,) = self.session.run([ONNX_OUTPUT], {self.input_name: rows})
        # Each row sums to 1 in double precision, as the native models' do: a float32 graph's
        # sums are off by up to about 1e-7.
        probabilities = np.asarray(probabilities, dtype=np.float64)
        return np.asarray(probabilities / probabilities.sum(axis=1, keepdims=True))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(matrix).argmax(axis=1)])


class OnnxRegressor:
    """A verified ONNX regressor in ONNX Runtime: `predict` gives each row's value, in
    float64 whatever the graph computes in. Threads and inputs as OnnxModel's; a value too
    large for a float32 input gives a non-finite value, which the prediction core refuses
    like the native model's."""

    def __init__(self, source: Path | bytes, features: int) -> None:
        self.session, self.input_name, self.input_type = open_session(source, features)
        columns = output_columns(self.session, ONNX_VALUES)
        if isinstance(columns, int) and columns != 1:
            raise ValueError(f"it gives {columns} values a row, and a regressor gives one")
        self.features = features

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.ndim != ONNX_INPUT_RANK or matrix.shape[1] != self.features:
            raise ValueError(f"expected rows of {self.features} features, got shape {matrix.shape}")
        rows = np.ascontiguousarray(matrix, dtype=self.input_type)
        (values,) = self.session.run([ONNX_VALUES], {self.input_name: rows})
        return np.asarray(values, dtype=np.float64).reshape(len(rows))


def open_session(source: Path | bytes, features: int) -> tuple[Any, str, type[np.floating[Any]]]:
    """An ONNX Runtime session of the model in `source`, one thread per call, with its input's
    name and NumPy type; ValueError unless it has one input of shape [rows, features]."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        source if isinstance(source, bytes) else str(source),
        options,
        providers=["CPUExecutionProvider"],
    )
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != ONNX_INPUT_RANK:
        raise ValueError("it must have one input of shape [rows, features]")
    if inputs[0].type not in ONNX_TYPES:
        raise ValueError(f"its input holds {inputs[0].type}, not float or double")
    width = inputs[0].shape[1]
    if isinstance(width, int) and width != features:
        raise ValueError(f"it takes {width} features, and metadata.json names {features}")
    return session, inputs[0].name, ONNX_TYPES[inputs[0].type]


def output_columns(session: Any, name: str) -> int | str | None:
    """The width of the output `name` (a number, or a name or None when it is free);
    ValueError when the model has no such output."""
    outputs = {output.name: output for output in session.get_outputs()}
    if name not in outputs:
        raise ValueError(f"it has no output named {name!r}")
    shape = outputs[name].shape
    return shape[-1] if shape else None


def onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
