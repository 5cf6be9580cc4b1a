"""The Open Inference Protocol (KServe V2) codec, shared by HTTP and gRPC: input tensors to
the feature matrix, the model's metadata, and tensors as raw bytes.

Inputs are either one tensor per feature, named after it (shape [N] or [N, 1]), or a single
tensor of shape [N, F] with the features in schema order, in any numeric datatype (only when
no feature is a category). Numbers come in any numeric datatype, booleans as BOOL, categories
as BYTES (UTF-8 text); a missing value of a nullable feature is NaN, an empty BYTES element or
a JSON null. Outputs are
`predict` (BYTES, the class labels, or FP64, a regressor's values) and, for classifiers,
`predict_proba` (FP64, [N, classes]).

The protocol's binary form of a tensor is its elements in row-major order, little-endian, with
no padding: a BOOL is one byte (0 or 1), and each BYTES element is a 4-byte little-endian
length followed by that many bytes. HTTP's binary tensor extension and gRPC's raw contents
both carry tensors this way, so both transports decode and encode them here. Errors are
InputErrors that name the tensor.
"""

import math
import struct
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from ..core.encoding import BadValue, encode_json, encode_text
from ..core.schema import FEATURE_NAMES, FEATURES, TASK, Feature, InputError
from ..core.settings import PROJECT_NAME
from .prediction_service import PredictionService

# The numbers of a single [N, F] tensor are the model's input as they are when every feature
# is a non-nullable number: checked for NaN and infinity at once.
ALL_NUMBERS_REQUIRED = all(f.type in ("number", "integer") and not f.nullable for f in FEATURES)
FEATURE_DATATYPE = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "category": "BYTES"}
# A classifier answers `predict` with its labels (BYTES) and `predict_proba` with the class
# probabilities; a regressor answers `predict` with its values (FP64).
OUTPUTS: tuple[str, ...] = ("predict",) if TASK == "regression" else ("predict", "predict_proba")
PREDICT_DATATYPE = "FP64" if TASK == "regression" else "BYTES"

# The fixed-size datatypes and their little-endian NumPy types. BF16 has none in NumPy.
FIXED_SIZE: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*FIXED_SIZE, "BYTES")
_LENGTH = struct.Struct("<I")


def decode(name: str, datatype: str, shape: Sequence[int], raw: bytes | memoryview) -> np.ndarray:
    """The tensor held in `raw`, as an array of `shape`.

    Fixed-size datatypes give a read-only view of `raw` (no copy); BYTES gives an object
    array of `bytes`. `raw` must hold exactly the elements the shape asks for.
    """
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InputError([name], f"shape must be a list of non-negative integers, got {shape}")
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(name, count, shape, memoryview(raw))
    dtype = FIXED_SIZE.get(datatype)
    if dtype is None:
        raise InputError(
            [name], f"unsupported datatype {datatype!r}; use one of {', '.join(DATATYPES)}"
        )
    size = memoryview(raw).nbytes
    if size != count * dtype.itemsize:
        raise InputError(
            [name],
            f"binary data has {size} bytes but shape {list(shape)} of {datatype} needs "
            f"{count * dtype.itemsize} ({count} elements of {dtype.itemsize} bytes)",
        )
    if datatype == "BOOL" and count and np.frombuffer(raw, dtype=np.uint8).max() > 1:
        raise InputError([name], "each BOOL element must be the byte 0 or 1")
    return _shaped(name, np.frombuffer(raw, dtype=dtype), shape)


def _shaped(name: str, array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """`array` in `shape`; a shape NumPy cannot hold (a dimension of 2**62 beside a 0) is the
    sender's error."""
    try:
        return array.reshape(shape)
    except ValueError:
        raise InputError([name], f"shape {list(shape)} is too large") from None


def _decode_bytes(name: str, count: int, shape: Sequence[int], raw: memoryview) -> np.ndarray:
    elements: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if len(elements) == count:
            raise InputError(
                [name],
                f"binary data goes on after the {count} BYTES elements of shape {list(shape)}",
            )
        if offset + _LENGTH.size > end:
            raise InputError(
                [name], f"BYTES element {len(elements)} is cut short in its 4-byte length"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > end:
            raise InputError(
                [name],
                f"BYTES element {len(elements)} has a length of {length} bytes but only "
                f"{end - offset} are left",
            )
        elements.append(bytes(raw[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise InputError(
            [name],
            f"binary data holds {len(elements)} BYTES elements but shape {list(shape)} "
            f"needs {count}",
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return _shaped(name, array, shape)


def encode(array: np.ndarray, datatype: str) -> bytes:
    """The raw bytes of `array` as `datatype`, row-major.

    BYTES elements may be `bytes`, or anything else, which is sent as its text in UTF-8.
    """
    if datatype == "BYTES":
        elements = [
            e if isinstance(e, bytes) else str(e).encode() for e in np.asarray(array).ravel()
        ]
        return b"".join(chain.from_iterable((_LENGTH.pack(len(e)), e) for e in elements))
    return np.ascontiguousarray(array, dtype=FIXED_SIZE[datatype]).tobytes()


def unknown_model_message(name: str, version: str | None, service: PredictionService) -> str | None:
    """Why `name` (and `version`, when given) is not this server's model; None when it is."""
    if name != PROJECT_NAME:
        return f"unknown model {name!r}; this server has {PROJECT_NAME!r}"
    if version is not None and service.holder.ready and version != service.model_version:
        return f"unknown version {version!r} of {name!r}; loaded: {service.model_version!r}"
    return None


def model_metadata(service: PredictionService) -> dict[str, Any]:
    classes = service.classes
    outputs = [{"name": "predict", "datatype": PREDICT_DATATYPE, "shape": [-1]}]
    if classes:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": PROJECT_NAME,
        "versions": [service.model_version] if service.holder.ready else [],
        "platform": service.platform,
        "inputs": [
            {"name": f.name, "datatype": FEATURE_DATATYPE[f.type], "shape": [-1, 1]}
            for f in FEATURES
        ],
        "outputs": outputs,
    }


def tensor_array(tensor: Any, index: int, raw: memoryview | None = None) -> np.ndarray:
    """One input tensor as sent: numbers as float64 (from JSON) or their datatype (raw), BOOL
    as booleans, BYTES as objects; from its JSON `data` or, when given, its raw bytes."""
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise InputError([where], "expected a tensor object")
    name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if not isinstance(name, str):
        raise InputError([where], "tensor needs a 'name'")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InputError(
            [name], f"datatype {datatype!r} is not supported; use one of {', '.join(DATATYPES)}"
        )
    # `type(d) is int`: JSON's true and false are ints to isinstance.
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InputError([name], "shape must be a list of non-negative integers")
    try:
        if raw is not None:
            if data is not None:
                raise InputError([name], "tensor has both 'data' and binary_data_size: send one")
            return decode(name, datatype, shape, raw)
        if data is None:
            raise InputError([name], "tensor has neither 'data' nor a binary_data_size parameter")
        array = _json_data(name, datatype, data)
        if array.size != math.prod(shape):
            raise InputError(
                [name], f"data has {array.size} values but shape {shape} needs {math.prod(shape)}"
            )
        return array.reshape(shape)
    except ValueError as error:  # a dimension beyond what NumPy can index, beside a 0
        if isinstance(error, InputError):
            raise
        raise InputError([name], f"shape {shape} is too large") from None


def _json_data(name: str, datatype: str, data: Any) -> np.ndarray:
    """A tensor's JSON `data` (flat, or nested as its shape) as a flat array."""
    if datatype != "BYTES" and datatype != "BOOL":
        try:
            return np.asarray(data, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            pass  # nulls, text or ragged lists: element by element below
    try:
        elements = np.asarray(data, dtype=object).ravel()
    except ValueError:
        raise InputError([name], "data must be a flat list, or lists nested as the shape") from None
    if datatype == "BYTES":
        # gRPC's bytes_contents hold bytes, JSON holds strings
        if not all(e is None or isinstance(e, str | bytes) for e in elements):
            raise InputError([name], "BYTES data must be strings")
        return elements
    if datatype == "BOOL":
        if not all(e is None or isinstance(e, bool) for e in elements):
            raise InputError([name], "BOOL data must be true or false")
        return elements
    if not all(
        e is None or (isinstance(e, int | float) and not isinstance(e, bool)) for e in elements
    ):
        raise InputError([name], "data must be numbers")
    return np.array([math.nan if e is None else e for e in elements], dtype=np.float64)


def feature_values(feature: Feature, array: np.ndarray, name: str) -> np.ndarray:
    """One feature's column as the model's numbers (core/encoding.py): a fast check for
    numbers, the encoder for booleans, categories and objects."""
    if array.dtype.kind in "fiu" and feature.type in ("number", "integer"):
        values = array.astype(np.float64, copy=False)
        finite = np.isfinite(values)
        if not finite.all() and (not feature.nullable or np.isinf(values).any()):
            raise InputError([name], "data must be finite numbers (no NaN or infinity)")
        if feature.type == "integer" and (values[finite] % 1 != 0).any():
            raise InputError([name], "data must be whole numbers for this feature")
        return values
    if array.dtype.kind == "b" and feature.type != "boolean":
        raise InputError([name], f"BOOL data for the {feature.type} feature {feature.name!r}")
    if array.dtype.kind in "fiu" and feature.type == "category":
        raise InputError([name], f"{feature.name!r} is a category: send its values as BYTES")
    out = np.empty(len(array), dtype=np.float64)
    for i, element in enumerate(array.tolist()):
        try:
            if isinstance(element, bytes | str):  # BYTES, raw or JSON: text as in a CSV cell
                text = element.decode("utf-8") if isinstance(element, bytes) else element
                out[i] = encode_text(feature, text)
            elif isinstance(element, float) and math.isnan(element):
                out[i] = encode_json(feature, None)
            elif feature.type == "boolean" and isinstance(element, int | float):
                if element not in (0, 1):
                    raise BadValue(f"has {element!r}, which is not true or false")
                out[i] = float(element)
            else:
                out[i] = encode_json(feature, element)
        except BadValue as bad:
            raise InputError([name], f"element {i} {bad.problem}") from None
        except UnicodeDecodeError:
            raise InputError([name], f"element {i} is not UTF-8 text") from None
    return out


def request_matrix(inputs: Any, raw: list[memoryview | None] | None = None) -> np.ndarray:
    """The feature matrix of the request's input tensors; `raw` holds the bytes of those
    sent as binary data (None for the others), in input order."""
    if not isinstance(inputs, list) or not inputs:
        raise InputError(["inputs"], "expected a non-empty list of input tensors")
    raw = raw or [None] * len(inputs)
    arrays = [tensor_array(t, i, raw[i]) for i, t in enumerate(inputs)]
    names = [t["name"] for t in inputs]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise InputError(
            [twice], f"input {twice!r} is given {names.count(twice)} times; send it once"
        )
    if len(arrays) == 1 and names[0] not in FEATURE_NAMES:
        matrix = arrays[0]
        if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
            raise InputError(
                [names[0]],
                f"a single input must have shape [N, {len(FEATURES)}] ({', '.join(FEATURE_NAMES)})",
            )
        if matrix.dtype.kind in "fiu" and ALL_NUMBERS_REQUIRED:
            values = matrix.astype(np.float64, copy=False)
            if not np.isfinite(values).all():
                raise InputError([names[0]], "data must be finite numbers (no NaN or infinity)")
            return values
        if any(f.type == "category" for f in FEATURES):
            raise InputError(
                [names[0]],
                "a single [N, F] input holds numbers; this model has category features: send "
                "one tensor per feature, categories as BYTES",
            )
        return np.column_stack(
            [feature_values(f, matrix[:, j], names[0]) for j, f in enumerate(FEATURES)]
        )
    missing = [n for n in FEATURE_NAMES if n not in names]
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise InputError(
            ["inputs"],
            f"unknown input(s) {', '.join(unknown)}; expected {', '.join(FEATURE_NAMES)}",
        )
    if missing:
        raise InputError(["inputs"], f"missing input(s): {', '.join(missing)}")
    columns = []
    for feature in FEATURES:
        name = feature.name
        array = arrays[names.index(name)]
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InputError([name], "a feature input must have shape [N] or [N, 1]")
        columns.append(feature_values(feature, array, name))
    if len({len(c) for c in columns}) != 1:
        raise InputError(["inputs"], "all inputs must have the same number of rows")
    return np.column_stack(columns)
