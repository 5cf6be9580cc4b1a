"""The model in ONNX, for serving from ONNX Runtime: converted with onnxmltools.

XGBoost compares features as 32-bit floats, and so does the converted model: its input is
float32, which gives the booster's own decisions. A classifier's output is its
probabilities, a regressor's its values.
"""

from typing import Any

from ..core.model import Regressor
from ..core.runtime import ONNX_VALUES

CONVERTER = "onnxmltools"
OPSET = 15  # the highest onnxmltools' tree converters support
# The name onnxmltools gives a regressor's output.
CONVERTED_VALUES = "variable"


def converter_version() -> str:
    import onnxmltools

    return str(onnxmltools.__version__)


def convert(model: Any, features: int) -> bytes:
    """The fitted booster as an ONNX model with one input [rows, features] and an output: a
    classifier's `probabilities` [rows, classes], a regressor's `values` [rows, 1]."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = onnxmltools.convert_xgboost(
        model.booster,
        initial_types=[("input", FloatTensorType([None, features]))],
        target_opset=OPSET,
        name="model",  # the default is random: the same model must give the same file
    )
    if isinstance(model, Regressor):
        rename(converted.graph, CONVERTED_VALUES, ONNX_VALUES)
    return bytes(converted.SerializeToString())


def rename(graph: Any, old: str, new: str) -> None:
    """Give the value `old` of `graph` the name `new`, wherever it appears."""
    for node in graph.node:
        for names in (node.input, node.output):
            for k, name in enumerate(names):
                if name == old:
                    names[k] = new
    for value in (*graph.output, *graph.value_info):
        if value.name == old:
            value.name = new
