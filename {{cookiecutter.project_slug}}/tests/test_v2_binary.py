"""The binary tensor data extension of the Open Inference Protocol, in-process: binary inputs
(alone or mixed with JSON ones), binary outputs per output or for all, the Triton client's own
encoding, and a 400 naming the tensor for every body whose bytes do not add up."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tritonclient.utils import deserialize_bytes_tensor

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import (
    CLASSES,
    EXAMPLE,
    as_matrix,
    as_records,
    needs_one_matrix,
    v2_body,
    varied_rows,
)

INFER = f"/v2/models/{PROJECT_NAME}/infer"
HEADER = "Inference-Header-Content-Length"
# Binary tensors of numbers: the rows as the model's matrix, which a category's text is not.
pytestmark = needs_one_matrix


def records_of(matrix: np.ndarray) -> list[dict[str, Any]]:
    """Rows of the model's matrix as /predict's records."""
    return as_records(pd.DataFrame(matrix, columns=list(FEATURE_NAMES)))


def binary_request(request: dict[str, Any], *data: bytes) -> dict[str, Any]:
    """Keyword arguments of a POST whose body is the JSON request, then the binary data."""
    header = json.dumps(request).encode()
    return {
        "content": header + b"".join(data),
        "headers": {HEADER: str(len(header)), "Content-Type": "application/octet-stream"},
    }


def binary_tensor(name: str, array: np.ndarray, datatype: str) -> tuple[dict[str, Any], bytes]:
    """An input tensor sent as binary data: its JSON part and its bytes (little-endian)."""
    numpy_type = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8"}[datatype]
    raw = np.ascontiguousarray(array, dtype=numpy_type).tobytes()
    tensor = {"name": name, "shape": list(array.shape), "datatype": datatype}
    return {**tensor, "parameters": {"binary_data_size": len(raw)}}, raw


def split_answer(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    """A binary answer's JSON response and the binary data after it."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER])
    return json.loads(response.content[:length]), response.content[length:]


@pytest.fixture
def rows() -> np.ndarray:
    return as_matrix(varied_rows())


@pytest.fixture
def expected(client: TestClient, rows: np.ndarray) -> dict[str, Any]:
    """/predict's answer for the rows: every V2 answer must agree with it."""
    records = records_of(rows)
    return dict(client.post("/predict", json=records).json())


def probabilities(expected: dict[str, Any]) -> np.ndarray:
    return np.array([list(row.values()) for row in expected["probabilities"]])


def test_server_metadata_lists_the_extension(client: TestClient) -> None:
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_binary_input_gets_the_same_json_answer(client: TestClient, rows: np.ndarray) -> None:
    tensor, raw = binary_tensor("input-0", rows, "FP64")
    response = client.post(INFER, **binary_request({"id": "b1", "inputs": [tensor]}, raw))
    assert response.headers["content-type"] == "application/json"
    assert HEADER.lower() not in response.headers
    as_json = client.post(INFER, json={"id": "b1", **v2_body(rows.tolist())}).json()
    assert response.json() == as_json


def test_binary_output_per_output(
    client: TestClient, rows: np.ndarray, expected: dict[str, Any]
) -> None:
    tensor, raw = binary_tensor("input-0", rows, "FP64")
    outputs = [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "predict_proba"}]
    answer, data = split_answer(
        client.post(INFER, **binary_request({"inputs": [tensor], "outputs": outputs}, raw))
    )
    predict, proba = answer["outputs"]
    assert predict["name"] == "predict" and predict["datatype"] == "BYTES"
    assert predict["shape"] == [len(rows)] and "data" not in predict
    assert predict["parameters"]["binary_data_size"] == len(data)
    assert [b.decode() for b in deserialize_bytes_tensor(data)] == expected["predictions"]
    assert "parameters" not in proba
    np.testing.assert_array_equal(
        np.reshape(proba["data"], proba["shape"]), probabilities(expected)
    )


def test_binary_data_output_makes_every_output_binary(
    client: TestClient, rows: np.ndarray, expected: dict[str, Any]
) -> None:
    request = v2_body(rows.tolist())  # one [N, features] FP64 tensor, as JSON
    answer, data = split_answer(
        client.post(INFER, json={**request, "parameters": {"binary_data_output": True}})
    )
    predict, proba = answer["outputs"]
    labels_size = predict["parameters"]["binary_data_size"]
    assert labels_size + proba["parameters"]["binary_data_size"] == len(data)
    assert "data" not in predict and "data" not in proba
    labels = [b.decode() for b in deserialize_bytes_tensor(data[:labels_size])]
    assert labels == expected["predictions"]
    assert proba["datatype"] == "FP64" and proba["shape"] == [len(rows), len(CLASSES)]
    matrix = np.frombuffer(data[labels_size:], dtype="<f8").reshape(proba["shape"])
    np.testing.assert_array_equal(matrix, probabilities(expected))


def test_an_output_can_say_no_to_binary_data_output_and_only_requested_outputs_come(
    client: TestClient, rows: np.ndarray, expected: dict[str, Any]
) -> None:
    request = {
        **v2_body(rows.tolist()),
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "predict_proba", "parameters": {"binary_data": False}}],
    }
    response = client.post(INFER, json=request)
    assert response.headers["content-type"] == "application/json"
    [proba] = response.json()["outputs"]
    assert proba["name"] == "predict_proba"
    np.testing.assert_array_equal(
        np.reshape(proba["data"], proba["shape"]), probabilities(expected)
    )
    request["outputs"] = [{"name": "predict"}]
    answer, data = split_answer(client.post(INFER, json=request))
    assert [o["name"] for o in answer["outputs"]] == ["predict"]
    assert [b.decode() for b in deserialize_bytes_tensor(data)] == expected["predictions"]


def test_json_and_binary_inputs_mix_in_any_order(client: TestClient, rows: np.ndarray) -> None:
    """The features in turn as JSON (FP32 [N, 1]), binary data (FP32 [N]), JSON (FP64 [N])
    and binary data (FP64 [N, 1]), sent from the third feature on and around, so that the
    tensors' order is not the features' and the binary buffers come in the tensors' order."""
    tensors: list[tuple[dict[str, Any], bytes | None]] = []
    # The binary FP32 tensors' values are what the model sees: float32, read back as float64.
    rounded = rows.copy()
    for j, (name, column) in enumerate(zip(FEATURE_NAMES, rows.T, strict=True)):
        kind = j % 4
        if kind == 0:
            json_tensor = {"shape": [len(rows), 1], "datatype": "FP32", "data": column.tolist()}
            tensors.append(({"name": name, **json_tensor}, None))
        elif kind == 1:
            tensors.append(binary_tensor(name, column, "FP32"))
            rounded[:, j] = column.astype(np.float32)
        elif kind == 2:
            json_tensor = {"shape": [len(rows)], "datatype": "FP64", "data": column.tolist()}
            tensors.append(({"name": name, **json_tensor}, None))
        else:
            tensors.append(binary_tensor(name, column.reshape(-1, 1), "FP64"))
    order = tensors[2:] + tensors[:2]
    inputs = [tensor for tensor, _ in order]
    buffers = [raw for _, raw in order if raw is not None]
    answer = client.post(INFER, **binary_request({"inputs": inputs}, *buffers)).json()
    records = records_of(rounded)
    expected = client.post("/predict", json=records).json()
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["predict"]["data"] == expected["predictions"]
    np.testing.assert_array_equal(
        np.reshape(outputs["predict_proba"]["data"], [len(rows), len(CLASSES)]),
        probabilities(expected),
    )


def test_the_triton_clients_own_encoding(
    client: TestClient, rows: np.ndarray, expected: dict[str, Any]
) -> None:
    import tritonclient.http as triton

    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)  # binary_data=True: the client's default
    body, header_length = triton.InferenceServerClient.generate_request_body([tensor])
    assert header_length is not None
    response = client.post(INFER, content=body, headers={HEADER: str(header_length)})
    assert response.status_code == 200, response.text
    result = triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers[HEADER])
    )
    assert [b.decode() for b in result.as_numpy("predict")] == expected["predictions"]
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), probabilities(expected))


WIDTH = len(FEATURE_NAMES)


def matrix_tensor(raw_size: object, **changes: Any) -> dict[str, Any]:
    tensor = {"name": "input-0", "shape": [1, WIDTH], "datatype": "FP64"}
    return {**tensor, "parameters": {"binary_data_size": raw_size}, **changes}


# EXAMPLE as one row of FP64 binary data, SIZE bytes; and with its last value NaN.
ROW = as_matrix([EXAMPLE]).astype("<f8").tobytes()
SIZE = len(ROW)
NAN_ROW = ROW[:-8] + np.array([np.nan], dtype="<f8").tobytes()


def per_feature(sizes: dict[str, int]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": n, "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": s}}
            for n, s in sizes.items()
        ]
    }


def with_header(length: str, body: bytes) -> dict[str, Any]:
    return {"content": body, "headers": {HEADER: length}}


MALFORMED: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "sizes that do not add up": (
        lambda: binary_request({"inputs": [matrix_tensor(SIZE)]}, ROW, b"\x00" * 8),
        f"{SIZE + 8} bytes of binary data follow the JSON request but the inputs' "
        f"binary_data_size (input-0 {SIZE}) add up to {SIZE}",
    ),
    "a truncated buffer": (
        lambda: binary_request({"inputs": [matrix_tensor(SIZE)]}, ROW[: SIZE // 2]),
        f"input-0: binary_data_size is {SIZE} bytes but only {SIZE // 2} are left",
    ),
    "a later tensor cut short": (
        lambda: binary_request(
            per_feature({n: 8 for n in FEATURE_NAMES}), ROW[:8] * (WIDTH - 1) + ROW[:4]
        ),
        f"{FEATURE_NAMES[-1]}: binary_data_size is 8 bytes but only 4 are left",
    ),
    "a size that does not match the shape": (
        lambda: binary_request({"inputs": [matrix_tensor(SIZE - 8)]}, ROW[:-8]),
        f"input-0: binary data has {SIZE - 8} bytes but shape [1, {WIDTH}] of FP64 needs {SIZE}",
    ),
    "an unsupported datatype": (
        lambda: binary_request(
            {"inputs": [matrix_tensor(SIZE // 2, datatype="BF16")]}, ROW[: SIZE // 2]
        ),
        "input-0: datatype 'BF16' is not supported",
    ),
    "a datatype that is not text": (
        lambda: binary_request({"inputs": [matrix_tensor(SIZE, datatype=["FP64"])]}, ROW),
        "input-0: datatype ['FP64'] is not supported",
    ),
    "BYTES elements longer than the data": (
        lambda: binary_request(
            {"inputs": [matrix_tensor(7, datatype="BYTES")]}, b"\x09\x00\x00\x00abc"
        ),
        "input-0: BYTES element 0 has a length of 9 bytes but only 3 are left",
    ),
    "a negative header length": (
        lambda: with_header("-1", json.dumps({"inputs": [matrix_tensor(SIZE)]}).encode() + ROW),
        f"{HEADER}: must be the length in bytes of the JSON request",
    ),
    "a header length that is not a number": (
        lambda: with_header("ten", json.dumps({"inputs": [matrix_tensor(SIZE)]}).encode() + ROW),
        f"{HEADER}: must be the length in bytes of the JSON request",
    ),
    "a header length past the body": (
        lambda: with_header("99999", json.dumps({"inputs": [matrix_tensor(SIZE)]}).encode() + ROW),
        f"{HEADER}: must be the length in bytes of the JSON request at the start of the body",
    ),
    "a header length that cuts the JSON": (
        lambda: with_header("10", json.dumps({"inputs": [matrix_tensor(SIZE)]}).encode() + ROW),
        "body is not valid JSON",
    ),
    "binary data without the header": (
        lambda: {"content": json.dumps({"inputs": [matrix_tensor(SIZE)]}).encode()},
        f"input-0: binary_data_size is {SIZE} bytes but only 0 are left in the body after the "
        f"JSON request (whose length is the {HEADER} header)",
    ),
    "a negative binary_data_size": (
        lambda: binary_request({"inputs": [matrix_tensor(-8)]}, ROW),
        "input-0: binary_data_size must be a whole number of bytes, got -8",
    ),
    "a binary_data_size that is text": (
        lambda: binary_request({"inputs": [matrix_tensor(str(SIZE))]}, ROW),
        f"input-0: binary_data_size must be a whole number of bytes, got '{SIZE}'",
    ),
    "both data and binary data": (
        lambda: binary_request(
            {"inputs": [matrix_tensor(SIZE, data=[list(range(1, WIDTH + 1))])]}, ROW
        ),
        "input-0: tensor has both 'data' and binary_data_size",
    ),
    "a NaN in binary data": (
        lambda: binary_request({"inputs": [matrix_tensor(SIZE)]}, NAN_ROW),
        "input-0: data must be finite numbers",
    ),
    "a binary_data flag that is not a boolean": (
        lambda: binary_request(
            {
                "inputs": [matrix_tensor(SIZE)],
                "outputs": [{"name": "predict", "parameters": {"binary_data": "yes"}}],
            },
            ROW,
        ),
        "outputs.predict: binary_data must be true or false, got 'yes'",
    ),
    "a binary_data_output that is not a boolean": (
        lambda: binary_request(
            {"inputs": [matrix_tensor(SIZE)], "parameters": {"binary_data_output": 1}}, ROW
        ),
        "parameters: binary_data_output must be true or false, got 1",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_binary_bodies_are_400_naming_the_tensor(client: TestClient, case: str) -> None:
    make, message = MALFORMED[case]
    response = client.post(INFER, **make())
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"]
    assert message in response.json()["error"], response.json()["error"]
    # and the next request is answered as usual
    tensor, raw = binary_tensor("input-0", as_matrix([EXAMPLE]), "FP64")
    assert client.post(INFER, **binary_request({"inputs": [tensor]}, raw)).status_code == 200


def test_a_binary_body_over_the_size_limit_is_413(trained: Settings) -> None:
    settings = trained.model_copy(update={"max_request_bytes": 1000})
    tensor, raw = binary_tensor("input-0", np.ones((200, WIDTH)), "FP64")
    with TestClient(create_app(settings)) as test_client:
        response = test_client.post(INFER, **binary_request({"inputs": [tensor]}, raw))
        assert response.status_code == 413
        assert "MAX_REQUEST_BYTES=1000" in response.json()["error"]
