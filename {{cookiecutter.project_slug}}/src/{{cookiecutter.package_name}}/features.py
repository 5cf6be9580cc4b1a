"""The feature schema: the one place that names the model's inputs and its target.

To use your own data, change FEATURES, TARGET and `load_sample()`; the request schema of the
API, the batch file checks and the V2 tensor metadata all follow from here.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

FeatureType = Literal["float", "int"]


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    description: str
    example: float


FEATURES: tuple[Feature, ...] = (
    Feature("sepal_length", "float", "Sepal length in cm", 5.1),
    Feature("sepal_width", "float", "Sepal width in cm", 3.5),
    Feature("petal_length", "float", "Petal length in cm", 1.4),
    Feature("petal_width", "float", "Petal width in cm", 0.2),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
TARGET = "species"

PYTHON_TYPES: dict[FeatureType, type] = {"float": float, "int": int}


class InputError(ValueError):
    """Input that does not match the feature schema. `location` says where, e.g. [3, 'x']."""

    def __init__(self, location: Sequence[str | int], message: str) -> None:
        self.location = list(location)
        self.message = message
        where = ".".join(str(part) for part in self.location)
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self) -> tuple[type, tuple[list[str | int], str]]:
        # So the error crosses process boundaries (a Dask worker's error reaches the client).
        return (type(self), (self.location, self.message))


def load_sample() -> tuple[Any, Any]:
    """The bundled training data: the iris measurements that ship with scikit-learn."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=dict(zip(iris.feature_names, FEATURE_NAMES, strict=True)))
    frame[TARGET] = np.asarray(iris.target_names)[iris.target]
    return frame[list(FEATURE_NAMES)], frame[TARGET]


def _field(feature: Feature) -> Any:
    return (
        PYTHON_TYPES[feature.type],
        Field(
            description=feature.description,
            examples=[feature.example],
            allow_inf_nan=False,
            strict=False,
        ),
    )


# The request record, generated from FEATURES so OpenAPI shows the real names and types.
Record: type[BaseModel] = create_model(
    "Record",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{f.name: f.example for f in FEATURES}]},
    ),
    **{f.name: _field(f) for f in FEATURES},
)


INTEGER_COLUMNS = [j for j, f in enumerate(FEATURES) if f.type == "int"]


def _number(value: Any, feature: Feature, location: list[str | int]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(location, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(location, "must be a finite number (no NaN or infinity)")
    if feature.type == "int" and not float(value).is_integer():
        raise InputError(location, f"expected a whole number, got {value!r}")
    return float(value)


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
    plain = _plain_rows(rows)
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
            matrix[i, j] = _number(row[feature.name], feature, [*here, feature.name])
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
            matrix[i, j] = _number(value, FEATURES[j], [*here, j])
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
