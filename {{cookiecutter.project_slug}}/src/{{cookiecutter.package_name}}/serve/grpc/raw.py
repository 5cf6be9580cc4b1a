"""Tensors as raw bytes (the protocol's `raw_input_contents` and `raw_output_contents`):
little-endian values in row-major order; a BYTES element is a 4-byte little-endian length,
then its bytes."""

import struct

import numpy as np

from ...features import InputError

DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?",
        "UINT8": "<u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
        "INT8": "<i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
    }.items()
}
LENGTH = struct.Struct("<I")


def decode(datatype: str, shape: list[int], raw: bytes, name: str) -> np.ndarray:
    """The tensor `name` from its raw bytes; InputError (naming it) when they do not fit."""
    if any(d < 0 for d in shape):
        raise InputError([name], f"shape {shape} has a negative dimension")
    count = int(np.prod(shape))
    if datatype == "BYTES":
        return _decode_bytes(shape, count, raw, name)
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise InputError([name], f"unknown datatype {datatype!r}")
    if len(raw) != count * dtype.itemsize:
        raise InputError(
            [name],
            f"raw contents hold {len(raw)} bytes but shape {shape} of {datatype} needs "
            f"{count * dtype.itemsize}",
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _decode_bytes(shape: list[int], count: int, raw: bytes, name: str) -> np.ndarray:
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + LENGTH.size > len(raw):
            raise InputError([name], f"raw BYTES contents end inside a length at byte {offset}")
        (length,) = LENGTH.unpack_from(raw, offset)
        offset += LENGTH.size
        if offset + length > len(raw):
            raise InputError([name], f"raw BYTES element {len(elements)} runs past the end")
        elements.append(raw[offset : offset + length])
        offset += length
    if len(elements) != count:
        raise InputError(
            [name],
            f"raw contents hold {len(elements)} BYTES elements but shape {shape} needs {count}",
        )
    return np.array(elements, dtype=object).reshape(shape)


def encode(array: np.ndarray, datatype: str) -> bytes:
    """The raw bytes of `array` as a tensor of `datatype`."""
    if datatype == "BYTES":
        parts = []
        for element in array.ravel():
            data = element if isinstance(element, bytes) else str(element).encode()
            parts += [LENGTH.pack(len(data)), data]
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
