"""Tensors as raw bytes, in the Open Inference Protocol's datatypes.

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

from ..features import InputError

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
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


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
    return array.reshape(shape)


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
