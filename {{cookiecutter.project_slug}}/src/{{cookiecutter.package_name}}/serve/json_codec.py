"""The project's own JSON: records and rows in, checked against the schema into a feature
matrix; predictions out, as the body that /predict and /invocations share.

The one validator of JSON records, for every route that takes them: a fast vectorised check
first, and only when that fails a row-by-row pass that finds and names the first bad field.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from ..core.encoding import BadValue, encode_json
from ..core.schema import FEATURE_NAMES, FEATURES, TASK, Feature, InputError
from .prediction_service import Prediction, PredictionService


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InputError([], f"body is not valid JSON: {error}") from None


def records_matrix(payload: Any) -> Any:
    """One record or a list of records to a feature matrix; errors locate the field
    as ["body", "sepal_length"] for one record and ["body", 3, "sepal_length"] in a list."""
    if isinstance(payload, dict):
        try:
            return mappings_to_matrix([payload])
        except InputError as error:
            raise InputError(error.location[1:], error.message) from None
    if not isinstance(payload, list):
        raise InputError([], "expected one record (an object) or a list of records")
    if not payload:
        raise InputError([], "no records to predict")
    return mappings_to_matrix(payload)


INTEGER_COLUMNS = [j for j, f in enumerate(FEATURES) if f.type == "integer"]
# Rows of plain numbers take the vectorised path only when every feature is a number.
ALL_NUMBERS = all(f.type in ("number", "integer") for f in FEATURES)


def _value(value: Any, feature: Feature, location: list[str | int]) -> float:
    try:
        return encode_json(feature, value)
    except BadValue as bad:
        raise InputError(location, bad.problem) from None


def _plain_rows(rows: Sequence[Any]) -> list[list[Any]] | None:
    """The rows' values in FEATURES order if every row is a well-formed record of numbers,
    else None. The fast path: one pass, no error bookkeeping."""
    width, values = len(FEATURE_NAMES), []
    for row in rows:
        if type(row) is not dict or len(row) != width:
            return None
        try:
            row_values = [row[name] for name in FEATURE_NAMES]
        except KeyError:
            return None
        for value in row_values:
            kind = type(value)
            if kind is not float and kind is not int:
                return None
        values.append(row_values)
    return values


def _checked(matrix: np.ndarray) -> bool:
    if not np.isfinite(matrix).all():
        return False
    if not INTEGER_COLUMNS:
        return True
    integral = matrix[:, INTEGER_COLUMNS]
    return bool((integral == np.round(integral)).all())


def mappings_to_matrix(rows: Sequence[Any], location: Sequence[str | int] = ()) -> np.ndarray:
    """Records given as plain mappings (from JSON) to a matrix, naming any bad field.

    The one validator of JSON records, for every route: a fast vectorised check first, and
    only when that fails a row-by-row pass that finds and names the first bad field.
    """
    plain = _plain_rows(rows) if ALL_NUMBERS else None
    if plain is not None:
        matrix = np.array(plain, dtype=np.float64).reshape(-1, len(FEATURES))
        if _checked(matrix):
            return matrix
    matrix = np.empty((len(rows), len(FEATURES)), dtype=np.float64)
    for i, row in enumerate(rows):
        here = [*location, i]
        if not isinstance(row, Mapping):
            raise InputError(here, "expected an object with the feature names as keys")
        missing = [name for name in FEATURE_NAMES if name not in row]
        if missing:
            raise InputError([*here, missing[0]], f"missing feature(s): {', '.join(missing)}")
        extra = [str(key) for key in row if key not in FEATURE_NAMES]
        if extra:
            raise InputError([*here, extra[0]], f"unknown field(s): {', '.join(extra)}")
        for j, feature in enumerate(FEATURES):
            matrix[i, j] = _value(row[feature.name], feature, [*here, feature.name])
    return matrix


def lists_to_matrix(rows: Sequence[Any], location: Sequence[str | int] = ()) -> np.ndarray:
    """Rows given as lists of values in FEATURES order to a matrix, naming any bad value."""
    matrix = np.empty((len(rows), len(FEATURES)), dtype=np.float64)
    for i, row in enumerate(rows):
        here = [*location, i]
        if not isinstance(row, list | tuple) or len(row) != len(FEATURES):
            raise InputError(
                here, f"expected a list of {len(FEATURES)} values ({', '.join(FEATURE_NAMES)})"
            )
        for j, value in enumerate(row):
            matrix[i, j] = _value(value, FEATURES[j], [*here, j])
    return matrix


def columns_to_matrix(columns: Any, rows: Sequence[Any]) -> np.ndarray:
    """A table given as column names plus rows of values (pandas' "split" form) to a matrix."""
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(["columns"], "expected a list of column names")
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise InputError(["columns"], f"missing feature(s): {', '.join(missing)}")
    extra = [name for name in columns if name not in FEATURE_NAMES]
    if extra:
        raise InputError(["columns"], f"unknown column(s): {', '.join(extra)}")
    if len(set(columns)) != len(columns):
        raise InputError(["columns"], "column names repeat")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InputError(["data", i], f"expected a list of {len(columns)} values")
    return mappings_to_matrix([dict(zip(columns, row, strict=True)) for row in rows], ["data"])


# What /predict and /invocations can answer: a classifier's labels and class probabilities,
# a regressor's values. The `outputs` query parameter chooses among them (all by default).
OUTPUTS: tuple[str, ...] = (
    ("predictions",) if TASK == "regression" else ("predictions", "probabilities")
)
OUTPUTS_PARAMETER = {
    "name": "outputs",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "examples": [",".join(OUTPUTS)]},
    "description": f"What to answer, comma-separated: {' or '.join(OUTPUTS)} (default: all).",
}


class OutputsError(InputError):
    """An `outputs` query parameter that names nothing this model answers."""


def requested_outputs(query: str | None) -> tuple[str, ...]:
    """The outputs the `outputs` query parameter names, in OUTPUTS order; all when absent."""
    if query is None:
        return OUTPUTS
    names = {name.strip() for name in query.split(",")} - {""}
    unknown = sorted(names - set(OUTPUTS))
    if unknown or not names:
        raise OutputsError(
            ["outputs"],
            f"unknown output(s) {', '.join(map(repr, unknown))}; this model answers "
            f"{', '.join(OUTPUTS)}",
        )
    return tuple(name for name in OUTPUTS if name in names)


def prediction_body(
    result: Prediction, service: PredictionService, outputs: tuple[str, ...] = OUTPUTS
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if "predictions" in outputs:
        body["predictions"] = result.labels.tolist()
    body["model_version"] = service.model_version
    if "probabilities" in outputs and result.probabilities is not None:
        classes = service.classes
        body["probabilities"] = [
            dict(zip(classes, row, strict=True)) for row in result.probabilities.tolist()
        ]
    return body
