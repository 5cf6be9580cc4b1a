"""The model in ONNX, for serving from ONNX Runtime: converted with onnxmltools.

XGBoost compares features as 32-bit floats, and so does the converted model: its input is
float32, which gives the booster's own decisions.
"""

from typing import Any

CONVERTER = "onnxmltools"
OPSET = 15  # the highest onnxmltools' tree converters support


def converter_version() -> str:
    import onnxmltools

    return str(onnxmltools.__version__)


def convert(model: Any, features: int) -> bytes:
    """The fitted booster as an ONNX model with one input [rows, features] and an output
    `probabilities` [rows, classes]."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = onnxmltools.convert_xgboost(
        model.booster,
        initial_types=[("input", FloatTensorType([None, features]))],
        target_opset=OPSET,
        name="model",  # the default is random: the same model must give the same file
    )
    return bytes(converted.SerializeToString())
