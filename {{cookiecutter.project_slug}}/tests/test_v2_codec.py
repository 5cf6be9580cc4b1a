"""Tensors as raw bytes: every V2 datatype both ways, the exact wire form, and every way the
bytes can disagree with the shape, each error naming the tensor."""

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from {{ cookiecutter.package_name }}.core.schema import InputError
from {{ cookiecutter.package_name }}.serve.v2_codec import FIXED_SIZE, decode, encode


@pytest.mark.parametrize("datatype", list(FIXED_SIZE))
def test_every_fixed_size_datatype_round_trips(datatype: str) -> None:
    array = (np.arange(6).reshape(2, 3) % 2).astype(FIXED_SIZE[datatype])
    raw = encode(array, datatype)
    assert len(raw) == array.size * FIXED_SIZE[datatype].itemsize
    decoded = decode("x", datatype, [2, 3], raw)
    assert decoded.shape == (2, 3)
    np.testing.assert_array_equal(decoded, array)


def test_the_wire_form_is_little_endian_and_row_major() -> None:
    assert encode(np.array([[1.5, -2.0]]), "FP32") == bytes.fromhex("0000c03f000000c0")
    assert encode(np.array([1, 256]), "UINT16") == bytes.fromhex("01000001")
    assert encode(np.array([[1, 2], [3, 4]]), "INT8") == bytes([1, 2, 3, 4])
    assert encode(np.array([True, False]), "BOOL") == b"\x01\x00"
    matrix = decode("x", "INT16", [2, 2], bytes.fromhex("0100020003000400"))
    assert matrix.tolist() == [[1, 2], [3, 4]]


def test_fixed_size_data_is_read_without_a_copy() -> None:
    raw = encode(np.arange(4.0), "FP64")
    array = decode("x", "FP64", [4], memoryview(raw))
    assert np.shares_memory(array, np.frombuffer(raw, dtype=np.uint8))


def test_bytes_elements_are_a_length_then_the_bytes() -> None:
    labels = np.array(["answer", "", "é"], dtype=object)
    raw = encode(labels, "BYTES")
    assert raw == b"\x06\x00\x00\x00answer" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9"
    assert decode("x", "BYTES", [3], raw).tolist() == [b"answer", b"", "é".encode()]
    # The same bytes as the Triton client's own encoding, both ways.
    assert raw == serialize_byte_tensor(labels).item()
    assert deserialize_bytes_tensor(raw).tolist() == [b"answer", b"", "é".encode()]


def test_bytes_round_trip_keeps_shape_and_takes_bytes_and_numpy_strings() -> None:
    grid = np.array([["a", "bc"], ["", "def"]])  # a NumPy string array, as labels often are
    assert decode("x", "BYTES", [2, 2], encode(grid, "BYTES")).tolist() == [
        [b"a", b"bc"],
        [b"", b"def"],
    ]
    raw_bytes = np.array([b"\x00\xff", b"z"], dtype=object)
    assert decode("x", "BYTES", [2], encode(raw_bytes, "BYTES")).tolist() == [b"\x00\xff", b"z"]
    assert encode(np.array([], dtype=object), "BYTES") == b""
    assert decode("x", "BYTES", [0], b"").shape == (0,)


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        pytest.param(
            "FP64",
            [1, 4],
            bytes(24),
            "has 24 bytes but shape [1, 4] of FP64 needs 32",
            id="too-few-bytes",
        ),
        pytest.param(
            "FP32",
            [2],
            bytes(12),
            "has 12 bytes but shape [2] of FP32 needs 8",
            id="too-many-bytes",
        ),
        pytest.param("BF16", [2], bytes(4), "unsupported datatype 'BF16'", id="bf16"),
        pytest.param("FP64", [-1, 4], bytes(32), "non-negative", id="negative-shape"),
        pytest.param("BOOL", [2], b"\x01\x02", "the byte 0 or 1", id="bool-not-0-or-1"),
        pytest.param(
            "BYTES", [1], b"\x03\x00", "cut short in its 4-byte length", id="bytes-cut-length"
        ),
        pytest.param(
            "BYTES",
            [1],
            b"\x09\x00\x00\x00abc",
            "length of 9 bytes but only 3 are left",
            id="bytes-cut-element",
        ),
        pytest.param(
            "BYTES",
            [2],
            b"\x01\x00\x00\x00a",
            "holds 1 BYTES elements but shape [2] needs 2",
            id="bytes-too-few",
        ),
        pytest.param(
            "BYTES",
            [1],
            b"\x01\x00\x00\x00a\x01\x00\x00\x00b",
            "goes on after the 1 BYTES",
            id="bytes-too-many",
        ),
    ],
)
def test_bytes_that_do_not_fit_the_shape_name_the_tensor(
    datatype: str, shape: list[int], raw: bytes, message: str
) -> None:
    with pytest.raises(InputError) as raised:
        decode("tensor-x", datatype, shape, raw)
    assert raised.value.location == ["tensor-x"]
    assert message in raised.value.message


def test_the_documented_datatypes_are_the_ones_the_route_reads() -> None:
    from typing import get_args

    from {{ cookiecutter.package_name }}.serve.schemas import NumericDatatype
    from {{ cookiecutter.package_name }}.serve.v2_codec import FIXED_SIZE

    assert set(get_args(NumericDatatype)) == set(FIXED_SIZE)
