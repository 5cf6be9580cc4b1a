"""Training's ONNX step: convert the fitted model (onnx_convert.py), then check that ONNX
Runtime gives the model's answers.

The ONNX model is used only when, on every row it is checked on (the held-out rows and the
bundled sample), ONNX Runtime gives exactly the native model's labels and probabilities
within TOLERANCE of the native ones. The result, passed or not and why, goes into
metadata.json, so the server and batch scoring choose their runtime from the artifact.

TOLERANCE is an absolute difference between probabilities. Converted tree models compute in
32-bit floats, whose rounding moves a probability by about 1e-7; a difference a hundred times
that is still far below anything that changes a decision, while a wrong conversion (a lost
tree, a feature out of order, another class order) moves probabilities by far more.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.artifact import OnnxExport
from ..core.predict import predict_matrix
from ..core.runtime import ONNX_FILE, OnnxModel, onnxruntime_version

TOLERANCE = 1e-5


def convert_and_check(model: Any, checks: Mapping[str, np.ndarray]) -> OnnxExport:
    """Convert `model` and check the result on each named set of rows against the model."""
    from .onnx_convert import CONVERTER, OPSET, convert, converter_version

    classes = [str(c) for c in model.classes_]
    features = next(iter(checks.values())).shape[1]
    report: dict[str, Any] = {
        "verified": False,
        "reason": None,
        "file": ONNX_FILE,
        "converter": CONVERTER,
        "converter_version": converter_version(),
        "opset": {"ai.onnx": OPSET},  # asked of the converter; the file's own below
        "onnxruntime": onnxruntime_version(),
        "tolerance": TOLERANCE,
        "max_abs_difference": None,
        "rows_checked": {name: len(rows) for name, rows in checks.items()},
    }
    try:
        content = convert(model, features)
        report["opset"] = opsets(content)
        converted = OnnxModel(content, features, classes)
    except Exception as error:  # converters fail in many ways on models they do not know
        reason = f"the model cannot be converted to ONNX: {type(error).__name__}: {error}"
        return OnnxExport(None, {**report, "reason": reason})
    largest = 0.0
    for name, rows in checks.items():
        labels, probabilities = predict_matrix(model, rows)
        onnx_labels, onnx_probabilities = predict_matrix(converted, rows)
        if probabilities is None or onnx_probabilities is None:
            return OnnxExport(None, {**report, "reason": "the model gives no probabilities"})
        largest = max(largest, float(np.abs(onnx_probabilities - probabilities).max()))
        differ = np.flatnonzero(labels.astype(str) != onnx_labels.astype(str))
        if len(differ):
            row = int(differ[0])
            reason = (
                f"ONNX Runtime gives other labels on {len(differ)} of the {len(rows)} {name} "
                f"rows (row {row}: {onnx_labels[row]!s} instead of {labels[row]!s})"
            )
            return OnnxExport(None, {**report, "reason": reason, "max_abs_difference": largest})
    report["max_abs_difference"] = largest
    if not largest <= TOLERANCE:  # also catches NaN
        reason = f"probabilities differ by up to {largest:.3g}, more than {TOLERANCE:g}"
        return OnnxExport(None, {**report, "reason": reason})
    return OnnxExport(content, {**report, "verified": True})


def opsets(content: bytes) -> dict[str, int]:
    """The operator sets the model uses, by domain ("ai.onnx" for the standard one), each with
    its version."""
    import onnx

    imports = onnx.load_from_string(content).opset_import
    return {entry.domain or "ai.onnx": int(entry.version) for entry in imports}
