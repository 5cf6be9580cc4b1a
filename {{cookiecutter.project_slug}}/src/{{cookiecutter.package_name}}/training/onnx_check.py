"""Training's ONNX step: convert the fitted model (onnx_convert.py), then check that ONNX
Runtime gives the model's answers.

The ONNX model is used only when, on every row it is checked on, ONNX Runtime gives exactly
the native model's labels and probabilities within TOLERANCE of the native ones. The rows are
the held-out and the training rows, and the held-out rows again with the values the schema
allows but the training data may lack (`schema_checks`): each nullable feature missing, each
category feature at each of its categories. The result, passed or not and why, goes into
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
from ..core.schema import FEATURES

TOLERANCE = 1e-5
# How many of the first check set's rows `schema_checks` varies: every missing feature and
# every category multiplies them.
VARIED_ROWS = 200


def convert_and_check(model: Any, checks: Mapping[str, np.ndarray]) -> OnnxExport:
    """Convert `model` and check the result against the model on each named set of rows, and
    on the first set's rows varied as `schema_checks` says."""
    from .onnx_convert import CONVERTER, OPSET, convert, converter_version

    classes = [str(c) for c in model.classes_]
    first = next(iter(checks.values()))
    features = first.shape[1]
    checks = {**checks, **schema_checks(first[:VARIED_ROWS])}
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
        unanswered = np.flatnonzero(np.isnan(probabilities).any(axis=1))
        if len(unanswered):
            row = int(unanswered[0])
            reason = (
                f"the model gives NaN probabilities on {len(unanswered)} of the {len(rows)} "
                f"{name} rows (row {row} first)"
            )
            return OnnxExport(None, {**report, "reason": reason})
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


def schema_checks(rows: np.ndarray) -> dict[str, np.ndarray]:
    """`rows` with the values the schema allows that the training data may lack: each
    nullable feature missing (NaN) in turn, and each category feature at each of its
    categories in turn. Empty when the schema has neither, or `rows` are not the schema's."""
    if rows.shape[1] != len(FEATURES):
        return {}
    missing = [with_column(rows, j, np.nan) for j, f in enumerate(FEATURES) if f.nullable]
    categories = [
        with_column(rows, j, code)
        for j, feature in enumerate(FEATURES)
        for code in range(len(feature.categories))
    ]
    checks = {"missing-value": missing, "category": categories}
    return {name: np.concatenate(varied) for name, varied in checks.items() if varied}


def with_column(rows: np.ndarray, column: int, value: float) -> np.ndarray:
    changed = rows.copy()
    changed[:, column] = value
    return changed


def opsets(content: bytes) -> dict[str, int]:
    """The operator sets the model uses, by domain ("ai.onnx" for the standard one), each with
    its version."""
    import onnx

    imports = onnx.load_from_string(content).opset_import
    return {entry.domain or "ai.onnx": int(entry.version) for entry in imports}
