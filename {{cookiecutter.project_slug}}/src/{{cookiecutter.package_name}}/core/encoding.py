"""Values of the schema's types to the model's input: one float64 matrix, in feature order.

Every pipeline (training, batch scoring, every protocol) encodes through here, so the model
sees the same numbers whatever the input came as:
- number and integer: the value (an integer must be whole);
- boolean: 1.0 for true, 0.0 for false;
- category: the value's position in the feature's `categories` (0.0, 1.0, ...);
- a missing value, allowed only for a nullable feature, and an unknown category of a feature
  whose `unknown` is `missing`: NaN, which the model imputes.
Anything else is refused with the reason, which the callers turn into an error naming where.
"""

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .schema import Feature

if TYPE_CHECKING:
    import pyarrow as pa

MISSING = math.nan
# Text that means true or false in a CSV cell (compared in lower case).
BOOLEAN_TEXT = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0}


class BadValue(ValueError):
    """A value that does not fit its feature; `index` is its row within the array, from 0."""

    def __init__(self, problem: str, index: int = 0) -> None:
        super().__init__(problem)
        self.problem, self.index = problem, index


def _missing(feature: Feature) -> float:
    if not feature.nullable:
        raise BadValue("is missing, and the feature is not nullable")
    return MISSING


def _category(feature: Feature, value: str) -> float:
    try:
        return float(feature.categories.index(value))
    except ValueError:
        if feature.unknown == "missing":
            return MISSING
        known = ", ".join(map(repr, feature.categories[:10]))
        more = ", ..." if len(feature.categories) > 10 else ""
        raise BadValue(
            f"has {value!r}, which is not one of its categories ({known}{more})"
        ) from None


def _number(feature: Feature, value: float) -> float:
    if not math.isfinite(value):
        raise BadValue("must be a finite number (no NaN or infinity)")
    if feature.type == "integer" and not float(value).is_integer():
        raise BadValue(f"expected a whole number, got {value!r}")
    return float(value)


def encode_json(feature: Feature, value: Any) -> float:
    """One JSON value (after parsing): numbers for number and integer, true or false for a
    boolean, a string for a category, null for a missing value."""
    if value is None:
        return _missing(feature)
    if feature.type == "boolean":
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        raise BadValue(f"expected true or false, got {value!r}")
    if feature.type == "category":
        if isinstance(value, str):
            return _category(feature, value)
        raise BadValue(f"expected a string (one of its categories), got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(f"expected a number, got {value!r}")
    return _number(feature, value)


def encode_text(feature: Feature, text: str) -> float:
    """One CSV cell: an empty cell is a missing value."""
    text = text.strip()
    if not text:
        return _missing(feature)
    if feature.type == "category":
        return _category(feature, text)
    if feature.type == "boolean":
        try:
            return BOOLEAN_TEXT[text.lower()]
        except KeyError:
            raise BadValue(f"has {text!r}, which is not true or false") from None
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"has {text!r}, which is not a number") from None
    return _number(feature, value)


def encode_array(feature: Feature, array: "pa.Array | pa.ChunkedArray") -> np.ndarray:
    """A whole column, vectorised with Arrow: numbers, booleans or text as read from a file.
    Raises BadValue at the first value that does not fit."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if feature.type == "category":
        values = _category_codes(feature, array)
    elif feature.type == "boolean":
        values = _booleans(array)
    else:
        values = _numbers(feature, array)
    # Missing: null, or empty text (a CSV file's empty cell in a column of text), which the
    # encoders above turn into MISSING as well.
    present = ~np.isnan(values)
    if not feature.nullable and not present.all():
        raise BadValue("is empty, and the feature is not nullable", int(np.argmin(present)))
    return values


def _first_bad(array: "pa.Array", bad: np.ndarray, problem: str) -> BadValue:
    index = int(np.argmax(bad))
    return BadValue(problem.format(value=array[index].as_py()), index)


def _numbers(feature: Feature, array: "pa.Array") -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(array.type) or not (
        pa.types.is_integer(array.type)
        or pa.types.is_floating(array.type)
        or pa.types.is_decimal(array.type)
        or pa.types.is_string(array.type)
        or pa.types.is_large_string(array.type)
        or pa.types.is_null(array.type)
    ):
        raise BadValue(f"holds {array.type} values, not numbers")
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        text = pc.utf8_trim_whitespace(array)
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        try:
            array = pc.cast(text, pa.float64())
        except pa.ArrowInvalid:
            parsed = [_parses(cell) for cell in text.to_pylist()]
            bad = ~np.array(parsed, dtype=bool)
            raise _first_bad(text, bad, "has {value!r}, which is not a number") from None
    values = np.asarray(
        pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    present = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    bad = present & ~np.isfinite(values)
    if bad.any():
        raise _first_bad(array, bad, "has {value!r}, which is not a finite number")
    if feature.type == "integer":
        fractional = present & (np.mod(np.where(present, values, 0.0), 1.0) != 0)
        if fractional.any():
            raise _first_bad(array, fractional, "has {value!r}, which is not a whole number")
    return np.where(present, values, MISSING)


def _parses(cell: str | None) -> bool:
    if cell is None:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _booleans(array: "pa.Array") -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(array.type):
        values = pc.cast(array, pa.float64())
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(array))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        words = pa.array(list(BOOLEAN_TEXT))
        codes = pc.index_in(text, value_set=words)
        unknown = np.asarray(
            pc.and_(text.is_valid(), codes.is_null()).to_numpy(zero_copy_only=False), dtype=bool
        )
        if unknown.any():
            raise _first_bad(text, unknown, "has {value!r}, which is not true or false")
        table = np.array(list(BOOLEAN_TEXT.values()), dtype=np.float64)
        index = np.asarray(pc.fill_null(codes, 0).to_numpy(zero_copy_only=False))
        return np.where(
            np.asarray(text.is_valid().to_numpy(zero_copy_only=False)), table[index], MISSING
        )
    elif pa.types.is_integer(array.type) or pa.types.is_null(array.type):
        values = pc.cast(array, pa.float64())
        numbers = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = np.asarray(values.is_valid().to_numpy(zero_copy_only=False)) & ~np.isin(
            numbers, [0, 1]
        )
        if bad.any():
            raise _first_bad(array, bad, "has {value!r}, which is not true or false")
    else:
        raise BadValue(f"holds {array.type} values, not true or false")
    return np.asarray(
        pc.fill_null(values, MISSING).to_numpy(zero_copy_only=False), dtype=np.float64
    )


def _category_codes(feature: Feature, array: "pa.Array") -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(array.type):
        numbers = array.to_numpy(zero_copy_only=False)
        if np.all(np.isnan(numbers) | (np.mod(np.nan_to_num(numbers), 1.0) == 0)):
            array = pc.cast(array, pa.int64())  # whole numbers read as floats: 2007.0 is "2007"
    if pa.types.is_integer(array.type):
        text = pc.cast(array, pa.string())
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        text = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
    elif pa.types.is_null(array.type):
        text = pa.nulls(len(array), pa.string())
    else:
        raise BadValue(f"holds {array.type} values, not text (one of its categories)")
    codes = pc.index_in(text, value_set=pa.array(feature.categories, pa.string()))
    present = np.asarray(text.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    unknown = present & np.asarray(codes.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if unknown.any() and feature.unknown == "error":
        index = int(np.argmax(unknown))
        raise BadValue(_category_problem(feature, text[index].as_py()), index)
    return np.asarray(
        pc.cast(codes, pa.float64()).fill_null(MISSING).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )


def _category_problem(feature: Feature, value: Any) -> str:
    try:
        _category(feature, str(value))
    except BadValue as error:
        return error.problem
    return f"has {value!r}"
