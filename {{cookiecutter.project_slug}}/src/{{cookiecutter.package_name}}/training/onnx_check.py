"""Training's ONNX step: convert the fitted model (onnx_convert.py), then check that ONNX
Runtime gives the model's answers.

The ONNX model is used only when, on every row it is checked on, ONNX Runtime gives the
native model's answers: a classifier's labels exactly and its probabilities within TOLERANCE
of the native ones, a regressor's values within TOLERANCE times the standard deviation of the
training target. The rows are the held-out and the training rows, and the held-out rows again
with the values the schema allows but the training data may lack (`schema_checks`): each
nullable feature missing, each category feature at each of its categories. The result, passed
or not and why, goes into metadata.json, so the server and batch scoring choose their runtime
from the artifact: `tolerance` there is the absolute difference allowed (in the target's units
for a regressor), `max_abs_difference` the largest one found.

For a classifier, TOLERANCE is an absolute difference between probabilities. Converted tree
models compute in 32-bit floats, whose rounding moves a probability by about 1e-7; a
difference a hundred times that is still far below anything that changes a decision, while a
wrong conversion (a lost tree, a feature out of order, another class order) moves
probabilities by far more.

For a regressor, the same fraction of the target's spread: a value may differ from the native
one by TOLERANCE times the training target's standard deviation, the scale its errors are
judged on. Float32 rounds a value by about 6e-8 of its size, and the sum of a few hundred
trees by some ulps more: well within, unless the target lies far from zero next to its
spread (years, say, whose spread is a few units). Then float32 cannot hold the values that
finely, the check fails with the difference found, and the native model serves. A wrong
conversion moves values by a leaf's worth, a sizeable part of the spread.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..core.artifact import OnnxExport
from ..core.predict import predict_matrix
from ..core.runtime import ONNX_FILE, onnx_model, onnxruntime_version
from ..core.schema import FEATURES, TASK

TOLERANCE = 1e-5
# How many of the first check set's rows `schema_checks` varies: every missing feature and
# every category multiplies them.
VARIED_ROWS = 200

# Compares the native model's answers with ONNX Runtime's on one named set of rows: the
# largest difference, and why they do not agree (None when they do, within the tolerance).
Comparison = Callable[[Any, Any, str, np.ndarray], tuple[float, str | None]]


def convert_and_check(
    model: Any, checks: Mapping[str, np.ndarray], target: np.ndarray | None = None
) -> OnnxExport:
    """Convert `model` and check the result against the model on each named set of rows, and
    on the first set's rows varied as `schema_checks` says. A regressor's tolerance follows
    from `target`, the values it was trained on."""
    from .onnx_convert import CONVERTER, OPSET, convert, converter_version

    compare: Comparison
    classes: list[str]
    if TASK == "regression":
        if target is None:
            raise ValueError("checking a regressor needs the target it was trained on")
        classes, compare, answers = [], compare_values, "values"
        tolerance = TOLERANCE * float(np.std(np.asarray(target, dtype=np.float64)))
    else:
        classes = [str(c) for c in model.classes_]
        compare, answers = compare_probabilities, "probabilities"
        tolerance = TOLERANCE
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
        "tolerance": tolerance,
        "max_abs_difference": None,
        "rows_checked": {name: len(rows) for name, rows in checks.items()},
    }
    try:
        content = convert(model, features)
        report["opset"] = opsets(content)
        converted = onnx_model(content, features, classes, TASK)
    except Exception as error:  # converters fail in many ways on models they do not know
        reason = f"the model cannot be converted to ONNX: {type(error).__name__}: {error}"
        return OnnxExport(None, {**report, "reason": reason})
    largest = 0.0
    for name, rows in checks.items():
        difference, disagreement = compare(model, converted, name, rows)
        largest = float(np.maximum(largest, difference))  # NaN stays NaN
        if disagreement is not None:
            found = largest if np.isfinite(largest) else None
            failed = {"reason": disagreement, "max_abs_difference": found}
            return OnnxExport(None, {**report, **failed})
    report["max_abs_difference"] = largest
    if not largest <= tolerance:  # also catches NaN
        reason = f"{answers} differ by up to {largest:.3g}, more than {tolerance:.3g}"
        return OnnxExport(None, {**report, "reason": reason})
    return OnnxExport(content, {**report, "verified": True})


def compare_probabilities(
    model: Any, converted: Any, name: str, rows: np.ndarray
) -> tuple[float, str | None]:
    """A classifier's: the same labels, and the largest difference between probabilities."""
    labels, probabilities = predict_matrix(model, rows)
    onnx_labels, onnx_probabilities = predict_matrix(converted, rows)
    if probabilities is None or onnx_probabilities is None:
        return np.nan, "the model gives no probabilities"
    unanswered = np.flatnonzero(np.isnan(probabilities).any(axis=1))
    if len(unanswered):
        row = int(unanswered[0])
        reason = (
            f"the model gives NaN probabilities on {len(unanswered)} of the {len(rows)} "
            f"{name} rows (row {row} first)"
        )
        return np.nan, reason
    largest = float(np.abs(onnx_probabilities - probabilities).max())
    differ = np.flatnonzero(labels.astype(str) != onnx_labels.astype(str))
    if len(differ):
        row = int(differ[0])
        reason = (
            f"ONNX Runtime gives other labels on {len(differ)} of the {len(rows)} {name} "
            f"rows (row {row}: {onnx_labels[row]!s} instead of {labels[row]!s})"
        )
        return largest, reason
    return largest, None


def compare_values(
    model: Any, converted: Any, name: str, rows: np.ndarray
) -> tuple[float, str | None]:
    """A regressor's: the largest difference between values (a NaN one is a reason)."""
    values, _ = predict_matrix(model, rows)
    onnx_values, _ = predict_matrix(converted, rows)
    unanswered = np.flatnonzero(np.isnan(values))
    if len(unanswered):
        row = int(unanswered[0])
        reason = (
            f"the model gives NaN values on {len(unanswered)} of the {len(rows)} {name} rows "
            f"(row {row} first)"
        )
        return np.nan, reason
    unanswered = np.flatnonzero(np.isnan(onnx_values))
    if len(unanswered):
        row = int(unanswered[0])
        reason = (
            f"ONNX Runtime gives NaN values on {len(unanswered)} of the {len(rows)} {name} "
            f"rows (row {row} first)"
        )
        return np.nan, reason
    return float(np.abs(onnx_values - values).max()), None


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
