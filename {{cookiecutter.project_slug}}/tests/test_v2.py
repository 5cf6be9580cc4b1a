"""Open Inference Protocol (KServe V2) in-process: shapes, datatypes and error shapes."""

import json
from typing import Any

from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME

from .conftest import (
    CLASSES,
    EXAMPLE,
    REQUIRED,
    as_matrix,
    needs_one_matrix,
    v2_body,
    v2_tensors,
)

INFER = f"/v2/models/{PROJECT_NAME}/infer"
WIDTH = len(EXAMPLE)  # the features: a matrix tensor's second dimension


def test_server_and_model_metadata(client: TestClient) -> None:
    assert client.get("/v2").json()["name"] == PROJECT_NAME
    model = client.get(f"/v2/models/{PROJECT_NAME}").json()
    assert [i["name"] for i in model["inputs"]] == list(EXAMPLE)
    assert {o["name"] for o in model["outputs"]} == {"predict", "predict_proba"}
    version = model["versions"][0]
    assert client.get(f"/v2/models/{PROJECT_NAME}/versions/{version}").status_code == 200
    assert client.get(f"/v2/models/{PROJECT_NAME}/versions/{version}/ready").status_code == 200


def test_infer_with_one_tensor_per_feature(client: TestClient, example_label: str) -> None:
    inputs = v2_tensors([EXAMPLE, EXAMPLE], numbers="FP32")
    body = client.post(INFER, json={"id": "r1", "inputs": inputs}).json()
    assert body["id"] == "r1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == [example_label, example_label]
    assert outputs["predict_proba"]["shape"] == [2, len(CLASSES)]


@needs_one_matrix
def test_infer_with_one_matrix_and_chosen_output(client: TestClient) -> None:
    tensor = {
        "name": "input-0",
        "shape": [1, WIDTH],
        "datatype": "FP64",
        "data": [list(EXAMPLE.values())],
    }
    body = client.post(INFER, json={"inputs": [tensor], "outputs": [{"name": "predict"}]}).json()
    assert [o["name"] for o in body["outputs"]] == ["predict"]


def test_errors_use_the_protocol_shape(client: TestClient) -> None:
    unknown = client.post("/v2/models/nope/infer", json={"inputs": []})
    assert unknown.status_code == 404 and "error" in unknown.json()
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get(f"/v2/models/{PROJECT_NAME}/versions/0/ready").status_code == 404
    too_wide = list(range(1, WIDTH + 2))  # one value too many for a row
    bad_shape = {"name": "x", "shape": [1, WIDTH + 1], "datatype": "FP32", "data": too_wide}
    response = client.post(INFER, json={"inputs": [bad_shape]})
    assert response.status_code == 400 and f"shape [N, {WIDTH}]" in response.json()["error"]
    letters = [chr(ord("a") + j % 26) for j in range(WIDTH)]
    text = {"name": "x", "shape": [1, WIDTH], "datatype": "BYTES", "data": letters}
    assert client.post(INFER, json={"inputs": [text]}).status_code == 400
    values = as_matrix([EXAMPLE])[0].tolist()
    values[list(EXAMPLE).index(REQUIRED.name)] = float("nan")  # a feature that needs a value
    nan = {"name": "x", "shape": [1, WIDTH], "datatype": "FP64", "data": values}
    assert client.post(INFER, content=json.dumps({"inputs": [nan]})).status_code == 400
    assert client.post(INFER, content=b"{").status_code == 400


def test_malformed_outputs_are_400(client: TestClient) -> None:
    request = v2_body([list(EXAMPLE.values())])
    assert client.post(INFER, json=request).status_code == 200
    for outputs in (1, True, "predict", [1]):
        response = client.post(INFER, json={**request, "outputs": outputs})
        assert response.status_code == 400, outputs


def test_malformed_tensor_headers_are_400_naming_the_tensor(client: TestClient) -> None:
    tensor = {"name": "x", "shape": [1, WIDTH], "datatype": "FP64", "data": list(EXAMPLE.values())}
    bad: dict[str, Any]
    for bad in (
        {"datatype": {}},
        {"datatype": ["FP64"]},
        {"shape": [False, WIDTH]},
        {"shape": [2**63, 0], "data": []},
        {"shape": [2**64 - 1, 0], "data": []},
    ):
        response = client.post(INFER, json={"inputs": [{**tensor, **bad}]})
        assert response.status_code == 400, bad
        assert response.json()["error"].startswith("x: "), bad
