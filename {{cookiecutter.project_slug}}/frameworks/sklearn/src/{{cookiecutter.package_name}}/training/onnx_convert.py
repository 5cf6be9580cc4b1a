"""The model in ONNX, for serving from ONNX Runtime: converted with skl2onnx.

skl2onnx converts scikit-learn's own estimators. A pipeline holding a transformer it does not
know (one of your own, say) cannot be converted: training then says why, and the native
model serves. The graph computes in double precision, as scikit-learn does, the imputing of
missing values included (`convert_imputer`). A classifier's output is its probabilities, a
regressor's its values.
"""

import math
from typing import Any

from ..core.runtime import ONNX_VALUES

CONVERTER = "skl2onnx"
OPSET = 17


def converter_version() -> str:
    import skl2onnx

    return str(skl2onnx.__version__)


def convert(model: Any, features: int) -> bytes:
    """The fitted model as an ONNX model with one input [rows, features] and an output: a
    classifier's `probabilities` [rows, classes] (no ZipMap: a plain tensor), a regressor's
    `values` [rows, 1]."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.base import is_regressor
    from sklearn.impute import SimpleImputer

    if is_regressor(model):
        options, outputs = {}, [(ONNX_VALUES, DoubleTensorType([None, 1]))]
    else:
        options, outputs = {id(model): {"zipmap": False}}, None
    converted = convert_sklearn(
        model,
        initial_types=[("input", DoubleTensorType([None, features]))],
        options=options,
        final_types=outputs,
        target_opset={"": OPSET, "ai.onnx.ml": 3},
        name="model",  # the default is random: the same model must give the same file
        custom_conversion_functions={SimpleImputer: convert_imputer},
    )
    return bytes(converted.SerializeToString())


def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """A SimpleImputer of NaN in double precision: each NaN becomes its column's statistic.

    skl2onnx's own converter uses ONNX's Imputer operator, which ONNX Runtime runs on 32-bit
    floats only; IsNaN and Where run on doubles.
    """
    from onnx import TensorProto

    imputer = operator.raw_operator
    of_nan = isinstance(imputer.missing_values, float) and math.isnan(imputer.missing_values)
    if not of_nan or imputer.add_indicator:
        raise NotImplementedError("only a SimpleImputer of NaN, without indicator, converts")
    (rows,) = operator.inputs
    statistics = scope.get_unique_variable_name("statistics")
    missing = scope.get_unique_variable_name("missing")
    container.add_initializer(
        statistics, TensorProto.DOUBLE, [len(imputer.statistics_)], imputer.statistics_.tolist()
    )
    container.add_node(
        "IsNaN", [rows.full_name], [missing], name=scope.get_unique_operator_name("IsNaN")
    )
    container.add_node(
        "Where",
        [missing, statistics, rows.full_name],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )
