"""The binary tensor data extension of the Open Inference Protocol, in-process: binary inputs
(alone or mixed with JSON ones), binary outputs per output or for all, the Triton client's own
encoding, and a 400 naming the tensor for every body whose bytes do not add up.

Inputs go as one tensor per feature (conftest.feature_tensors: numbers in FP64 or FP32,
booleans in BOOL, categories in BYTES), which every schema's rows fit; one [N, features]
tensor of numbers is checked where that form is the point.
"""

import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, FEATURES, Feature
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import (
    CLASSES,
    EXAMPLE,
    MATRIX_REFUSAL,
    ONE_MATRIX,
    PREDICT_DATATYPE,
    V2_OUTPUTS,
    Tensor,
    as_answers,
    as_float32,
    as_matrix,
    binary_inputs,
    feature_tensors,
    json_value,
    v2_body,
    v2_tensors,
    v2_values,
    varied_rows,
    with_unfit,
)

INFER = f"/v2/models/{PROJECT_NAME}/infer"
HEADER = "Inference-Header-Content-Length"
WIDTH = len(FEATURE_NAMES)


def binary_request(request: dict[str, Any], *data: bytes) -> dict[str, Any]:
    """Keyword arguments of a POST whose body is the JSON request, then the binary data."""
    header = json.dumps(request).encode()
    return {
        "content": header + b"".join(data),
        "headers": {HEADER: str(len(header)), "Content-Type": "application/octet-stream"},
    }


def binary_body(tensors: list[Tensor], **request: Any) -> dict[str, Any]:
    """Keyword arguments of a POST of the tensors, all as binary data, and `request`'s other
    fields."""
    inputs, buffers = binary_inputs(tensors)
    return binary_request({**request, "inputs": inputs}, *buffers)


def split_answer(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    """A binary answer's JSON response and the binary data after it."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER])
    return json.loads(response.content[:length]), response.content[length:]


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    return varied_rows()


@pytest.fixture
def expected(client: TestClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """/predict's answer for the rows: every V2 answer must agree with it."""
    return dict(client.post("/predict", json=rows).json())


def probabilities(expected: dict[str, Any]) -> np.ndarray | None:
    """/predict's probabilities as a [N, classes] matrix; None for a regressor, which has
    none."""
    if not CLASSES:
        assert "probabilities" not in expected, expected
        return None
    return np.array([list(row.values()) for row in expected["probabilities"]])


def check_outputs(
    outputs: list[dict[str, Any]], data: bytes, expected: dict[str, Any], binary: set[str]
) -> None:
    """The answer's outputs, in turn, are V2_OUTPUTS (or the requested ones) holding
    /predict's answer; those in `binary` as binary data, one after the other in `data`, and
    the others as JSON."""
    offset = 0
    for output in outputs:
        assert output["name"] in V2_OUTPUTS
        size = output.get("parameters", {}).get("binary_data_size")
        assert (size is not None) == (output["name"] in binary), output
        assert ("data" in output) == (size is None), output
        raw = None if size is None else data[offset : offset + size]
        offset += size or 0
        if output["name"] == "predict":
            assert output["datatype"] == PREDICT_DATATYPE
            assert output["shape"] == [len(expected["predictions"])]
            assert v2_values(output, raw) == expected["predictions"]
        else:
            assert output["datatype"] == "FP64"
            values = np.reshape(v2_values(output, raw), output["shape"])
            np.testing.assert_array_equal(values, probabilities(expected))
    assert offset == len(data), "binary data beyond the outputs"


def test_server_metadata_lists_the_extension(client: TestClient) -> None:
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_binary_input_gets_the_same_json_answer(
    client: TestClient, rows: list[dict[str, Any]]
) -> None:
    response = client.post(INFER, **binary_body(feature_tensors(rows), id="b1"))
    assert response.headers["content-type"] == "application/json"
    assert HEADER.lower() not in response.headers
    as_json = client.post(INFER, json={"id": "b1", "inputs": v2_tensors(rows)})
    assert response.status_code == as_json.status_code == 200, response.text
    assert response.json() == as_json.json()


def test_one_binary_matrix_of_numbers(client: TestClient, rows: list[dict[str, Any]]) -> None:
    """One [N, features] FP64 tensor of the rows' numbers gets the same answer, when no
    feature is a category; with one, a 400 naming the tensor that says to send one tensor
    per feature."""
    matrix = Tensor("input-0", "FP64", as_matrix(rows))
    response = client.post(INFER, **binary_body([matrix]))
    if ONE_MATRIX:
        as_json = client.post(INFER, json={"inputs": v2_tensors(rows)})
        assert response.status_code == 200, response.text
        assert response.json() == as_json.json()
    else:
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error.startswith("input-0: ") and MATRIX_REFUSAL in error, error


def test_binary_output_per_output(
    client: TestClient, rows: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    """`predict` asks for binary data, any other output does not."""
    outputs = [{"name": "predict", "parameters": {"binary_data": True}}]
    outputs += [{"name": name} for name in V2_OUTPUTS[1:]]
    answer, data = split_answer(
        client.post(INFER, **binary_body(feature_tensors(rows), outputs=outputs))
    )
    assert [o["name"] for o in answer["outputs"]] == V2_OUTPUTS
    check_outputs(answer["outputs"], data, expected, binary={"predict"})


def test_binary_data_output_makes_every_output_binary(
    client: TestClient, rows: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    request = v2_body([list(row.values()) for row in rows])  # as JSON
    answer, data = split_answer(
        client.post(INFER, json={**request, "parameters": {"binary_data_output": True}})
    )
    assert [o["name"] for o in answer["outputs"]] == V2_OUTPUTS
    check_outputs(answer["outputs"], data, expected, binary=set(V2_OUTPUTS))


def test_an_output_can_say_no_to_binary_data_output_and_only_requested_outputs_come(
    client: TestClient, rows: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    """The last output (a classifier's `predict_proba`, a regressor's `predict`) asked for
    alone and as JSON comes alone and as JSON; `predict` asked for alone comes alone, binary
    as the request says."""
    last = V2_OUTPUTS[-1]
    request = {
        **v2_body([list(row.values()) for row in rows]),
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": last, "parameters": {"binary_data": False}}],
    }
    response = client.post(INFER, json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    outputs = response.json()["outputs"]
    assert [o["name"] for o in outputs] == [last]
    check_outputs(outputs, b"", expected, binary=set())
    request["outputs"] = [{"name": "predict"}]
    answer, data = split_answer(client.post(INFER, json=request))
    assert [o["name"] for o in answer["outputs"]] == ["predict"]
    check_outputs(answer["outputs"], data, expected, binary={"predict"})


def test_json_and_binary_inputs_mix_in_any_order(
    client: TestClient, rows: list[dict[str, Any]]
) -> None:
    """The features in turn as JSON ([N, 1]), binary data ([N]), JSON ([N]) and binary data
    ([N, 1]), numbers in FP32 for the first two and FP64 for the others, sent from the third
    feature on and around, so that the tensors' order is not the features' and the binary
    buffers come in the tensors' order."""
    single, double = feature_tensors(rows, numbers="FP32"), feature_tensors(rows)
    # What the server sees: a number in FP32 binary data is float32's; JSON is read as float64.
    seen = {f.name: [row[f.name] for row in rows] for f in FEATURES}
    tensors: list[tuple[dict[str, Any], bytes | None]] = []
    for j, name in enumerate(FEATURE_NAMES):
        kind = j % 4
        tensor = single[j] if kind < 2 else double[j]
        values = [json_value(v) for v in seen[name]]
        column = [[v] for v in values] if kind == 0 else values
        if kind in (0, 2):
            shape = [len(rows), 1] if kind == 0 else [len(rows)]
            json_tensor = {"shape": shape, "datatype": tensor.datatype, "data": column}
            tensors.append(({"name": name, **json_tensor}, None))
            continue
        if kind == 3:
            tensor = tensor._replace(array=tensor.array.reshape(-1, 1))
        [binary], [raw] = binary_inputs([tensor])
        tensors.append((binary, raw))
        if tensor.datatype == "FP32":
            seen[name] = [r[name] for r in as_float32([{name: v} for v in seen[name]])]
    order = tensors[2:] + tensors[:2]
    inputs = [tensor for tensor, _ in order]
    buffers = [raw for _, raw in order if raw is not None]
    response = client.post(INFER, **binary_request({"inputs": inputs}, *buffers))
    assert response.status_code == 200, response.text
    records = [dict(zip(seen, values, strict=True)) for values in zip(*seen.values(), strict=True)]
    expected = client.post("/predict", json=records).json()
    check_outputs(response.json()["outputs"], b"", expected, binary=set())


def test_the_triton_clients_own_encoding(
    client: TestClient, rows: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    """One tensor per feature, each set from its NumPy array and sent as the client sends it
    (binary_data=True, its default): BYTES in the client's own serialisation."""
    import tritonclient.http as triton

    inputs = []
    for tensor in feature_tensors(rows):
        infer_input = triton.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
        infer_input.set_data_from_numpy(tensor.array)
        inputs.append(infer_input)
    body, header_length = triton.InferenceServerClient.generate_request_body(inputs)
    assert header_length is not None
    response = client.post(INFER, content=body, headers={HEADER: str(header_length)})
    assert response.status_code == 200, response.text
    result = triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers[HEADER])
    )
    assert as_answers(result.as_numpy("predict")) == expected["predictions"]
    # None for a regressor, which has no probabilities
    proba = result.as_numpy("predict_proba")
    assert (proba is None) == (not CLASSES)
    np.testing.assert_array_equal(proba, probabilities(expected))


# EXAMPLE as one tensor per feature, all binary data: the inputs' JSON, their buffers and the
# bytes of them all; FIRST is the first tensor's name and size, LAST the last one's.
INPUTS, BUFFERS = binary_inputs(feature_tensors([EXAMPLE]))
DATA = b"".join(BUFFERS)
FIRST, FIRST_SIZE = INPUTS[0]["name"], len(BUFFERS[0])
LAST, LAST_SIZE = INPUTS[-1]["name"], len(BUFFERS[-1])
SIZES = ", ".join(f"{t['name']} {len(b)}" for t, b in zip(INPUTS, BUFFERS, strict=True))


def inputs_with(**changes: Any) -> list[dict[str, Any]]:
    """INPUTS, the first one changed: `changes` are its keys, `binary_data_size` its size."""
    first = dict(INPUTS[0])
    if "binary_data_size" in changes:
        first["parameters"] = {"binary_data_size": changes.pop("binary_data_size")}
    return [{**first, **changes}, *INPUTS[1:]]


def example(**request: Any) -> dict[str, Any]:
    """Keyword arguments of a POST of EXAMPLE, all binary data, with `request`'s fields."""
    return binary_request({"inputs": INPUTS, **request}, DATA)


def with_header(length: str, body: bytes) -> dict[str, Any]:
    return {"content": body, "headers": {HEADER: length}}


def unfit(feature: Feature) -> tuple[Callable[[], dict[str, Any]], str]:
    """EXAMPLE, all binary data, but for a value of the feature that it does not take."""
    tensors, message = with_unfit(feature)
    return lambda: binary_body(tensors), f"{feature.name}: {message}"


BODY = json.dumps({"inputs": INPUTS}).encode()
MALFORMED: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "sizes that do not add up": (
        lambda: binary_request({"inputs": INPUTS}, DATA, b"\x00" * 8),
        f"{len(DATA) + 8} bytes of binary data follow the JSON request but the inputs' "
        f"binary_data_size ({SIZES}) add up to {len(DATA)}",
    ),
    "a truncated buffer": (
        lambda: binary_request({"inputs": INPUTS}, DATA[: len(DATA) - LAST_SIZE // 2 - 1]),
        f"{LAST}: binary_data_size is {LAST_SIZE} bytes but only {LAST_SIZE - LAST_SIZE // 2 - 1} "
        "are left",
    ),
    "a size that does not match the shape": (
        lambda: binary_request(
            {"inputs": inputs_with(datatype="FP64", binary_data_size=4)},
            b"\x00" * 4,
            *BUFFERS[1:],
        ),
        f"{FIRST}: binary data has 4 bytes but shape [1] of FP64 needs 8",
    ),
    "a shape that is not a feature's": (
        lambda: binary_request({"inputs": inputs_with(shape=[1, 1, 1])}, DATA),
        f"{FIRST}: a feature input must have shape [N] or [N, 1]",
    ),
    "an unsupported datatype": (
        lambda: binary_request(
            {"inputs": inputs_with(datatype="BF16", binary_data_size=2)}, b"\x00" * 2, *BUFFERS[1:]
        ),
        f"{FIRST}: datatype 'BF16' is not supported",
    ),
    "a datatype that is not text": (
        lambda: binary_request({"inputs": inputs_with(datatype=["FP64"])}, DATA),
        f"{FIRST}: datatype ['FP64'] is not supported",
    ),
    "BYTES elements longer than the data": (
        lambda: binary_request(
            {"inputs": inputs_with(datatype="BYTES", binary_data_size=7)},
            b"\x09\x00\x00\x00abc",
            *BUFFERS[1:],
        ),
        f"{FIRST}: BYTES element 0 has a length of 9 bytes but only 3 are left",
    ),
    "a BOOL element that is not 0 or 1": (
        lambda: binary_request(
            {"inputs": inputs_with(datatype="BOOL", binary_data_size=1)}, b"\x02", *BUFFERS[1:]
        ),
        f"{FIRST}: each BOOL element must be the byte 0 or 1",
    ),
    "a negative header length": (
        lambda: with_header("-1", BODY + DATA),
        f"{HEADER}: must be the length in bytes of the JSON request",
    ),
    "a header length that is not a number": (
        lambda: with_header("ten", BODY + DATA),
        f"{HEADER}: must be the length in bytes of the JSON request",
    ),
    "a header length past the body": (
        lambda: with_header("99999", BODY + DATA),
        f"{HEADER}: must be the length in bytes of the JSON request at the start of the body",
    ),
    "a header length that cuts the JSON": (
        lambda: with_header("10", BODY + DATA),
        "body is not valid JSON",
    ),
    "binary data without the header": (
        lambda: {"content": BODY},
        f"{FIRST}: binary_data_size is {FIRST_SIZE} bytes but only 0 are left in the body after "
        f"the JSON request (whose length is the {HEADER} header)",
    ),
    "a negative binary_data_size": (
        lambda: binary_request({"inputs": inputs_with(binary_data_size=-8)}, DATA),
        f"{FIRST}: binary_data_size must be a whole number of bytes, got -8",
    ),
    "a binary_data_size that is text": (
        lambda: binary_request({"inputs": inputs_with(binary_data_size=str(FIRST_SIZE))}, DATA),
        f"{FIRST}: binary_data_size must be a whole number of bytes, got '{FIRST_SIZE}'",
    ),
    "both data and binary data": (
        lambda: binary_request({"inputs": inputs_with(data=[json_value(EXAMPLE[FIRST])])}, DATA),
        f"{FIRST}: tensor has both 'data' and binary_data_size",
    ),
    **{f"a value {feature.name} does not take": unfit(feature) for feature in FEATURES},
    "a binary_data flag that is not a boolean": (
        lambda: example(outputs=[{"name": "predict", "parameters": {"binary_data": "yes"}}]),
        "outputs.predict: binary_data must be true or false, got 'yes'",
    ),
    "a binary_data_output that is not a boolean": (
        lambda: example(parameters={"binary_data_output": 1}),
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
    assert client.post(INFER, **example()).status_code == 200


def test_a_binary_body_over_the_size_limit_is_413(trained: Settings) -> None:
    settings = trained.model_copy(update={"max_request_bytes": 1000})
    inputs, buffers = binary_inputs(feature_tensors([EXAMPLE] * 200))
    assert sum(map(len, buffers)) > 1000
    with TestClient(create_app(settings)) as test_client:
        response = test_client.post(INFER, **binary_request({"inputs": inputs}, *buffers))
        assert response.status_code == 413
        assert "MAX_REQUEST_BYTES=1000" in response.json()["error"]
