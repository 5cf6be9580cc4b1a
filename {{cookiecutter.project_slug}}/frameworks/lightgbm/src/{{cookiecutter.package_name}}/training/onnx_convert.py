"""The model in ONNX, for serving from ONNX Runtime: converted with onnxmltools.

The converted trees compare 32-bit floats, where LightGBM compares doubles: a value within
float rounding of a split threshold could go the other way. Training checks the converted
model against the booster on the held-out rows and the sample before it is used.
"""

from typing import Any

CONVERTER = "onnxmltools"
OPSET = 15  # the highest onnxmltools' tree converters support


def converter_version() -> str:
    import onnxmltools

    return str(onnxmltools.__version__)


def convert(model: Any, features: int) -> bytes:
    """The fitted booster as an ONNX model with one input [rows, features] and an output
    `probabilities` [rows, classes] (no ZipMap: a plain tensor)."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = onnxmltools.convert_lightgbm(
        model.booster,
        initial_types=[("input", FloatTensorType([None, features]))],
        target_opset=OPSET,
        name="model",  # the default is random: the same model must give the same file
        zipmap=False,
    )
    return bytes(converted.SerializeToString())
