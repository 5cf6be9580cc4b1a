"""The model in ONNX, for serving from ONNX Runtime: converted with skl2onnx.

skl2onnx converts scikit-learn's own estimators. A pipeline holding a transformer it does not
know (one of your own, say) cannot be converted: training then says why, and the native
model serves. The graph computes in double precision, as scikit-learn does.
"""

from typing import Any

CONVERTER = "skl2onnx"
OPSET = 17


def converter_version() -> str:
    import skl2onnx

    return str(skl2onnx.__version__)


def convert(model: Any, features: int) -> bytes:
    """The fitted model as an ONNX model with one input [rows, features] and an output
    `probabilities` [rows, classes] (no ZipMap: a plain tensor)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    converted = convert_sklearn(
        model,
        initial_types=[("input", DoubleTensorType([None, features]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 3},
        name="model",  # the default is random: the same model must give the same file
    )
    return bytes(converted.SerializeToString())
