"""Open Inference Protocol (KServe V2) in-process: shapes, datatypes and error shapes."""

import json
from typing import Any

from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME

from .conftest import (
    CLASSES,
    EXAMPLE,
    MATRIX_REFUSAL,
    NUMERIC,
    ONE_MATRIX,
    PREDICT_DATATYPE,
    REQUIRED,
    V2_OUTPUTS,
    as_matrix,
    json_value,
    v2_body,
    v2_tensors,
)

INFER = f"/v2/models/{PROJECT_NAME}/infer"
WIDTH = len(EXAMPLE)  # the features: a matrix tensor's second dimension


def test_server_and_model_metadata(client: TestClient) -> None:
    assert client.get("/v2").json()["name"] == PROJECT_NAME
    model = client.get(f"/v2/models/{PROJECT_NAME}").json()
    assert [i["name"] for i in model["inputs"]] == list(EXAMPLE)
    # A classifier's labels and probabilities, a regressor's values.
    outputs = [(o["name"], o["datatype"], o["shape"]) for o in model["outputs"]]
    expected = [("predict", PREDICT_DATATYPE, [-1])]
    if CLASSES:
        expected.append(("predict_proba", "FP64", [-1, len(CLASSES)]))
    assert outputs == expected
    version = model["versions"][0]
    assert client.get(f"/v2/models/{PROJECT_NAME}/versions/{version}").status_code == 200
    assert client.get(f"/v2/models/{PROJECT_NAME}/versions/{version}/ready").status_code == 200


def test_infer_with_one_tensor_per_feature(client: TestClient, example_label: Any) -> None:
    inputs = v2_tensors([EXAMPLE, EXAMPLE], numbers="FP32")
    body = client.post(INFER, json={"id": "r1", "inputs": inputs}).json()
    assert body["id"] == "r1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == V2_OUTPUTS
    predict = outputs["predict"]
    assert predict["datatype"] == PREDICT_DATATYPE and predict["shape"] == [2]
    assert predict["data"] == [example_label, example_label]
    if CLASSES:
        assert outputs["predict_proba"]["shape"] == [2, len(CLASSES)]


def test_infer_with_chosen_outputs(client: TestClient, example_label: Any) -> None:
    """The outputs asked for, and only them; an output the model does not have (a
    regressor's `predict_proba`) is a 400 that names it."""
    request = {"inputs": v2_tensors([EXAMPLE])}
    for names in (["predict"], ["predict_proba"], ["predict_proba", "predict"]):
        outputs = [{"name": name} for name in names]
        response = client.post(INFER, json={**request, "outputs": outputs})
        if not set(names) <= set(V2_OUTPUTS):
            assert response.status_code == 400, response.text
            assert "predict_proba" in response.json()["error"]
            continue
        listed = response.json()["outputs"]
        answered = {o["name"]: o for o in listed}
        assert sorted(answered) == sorted(names) == sorted(o["name"] for o in listed)
        if "predict" in answered:
            assert answered["predict"]["data"] == [example_label]
        if "predict_proba" in answered:
            assert answered["predict_proba"]["shape"] == [1, len(CLASSES)]


def test_infer_with_one_matrix(client: TestClient, example_label: Any) -> None:
    """One [N, features] tensor of the rows' numbers: the model's matrix, when no feature is
    a category; with one, a 400 naming the tensor that says to send one tensor per feature."""
    codes = [[json_value(v) for v in row] for row in as_matrix([EXAMPLE, EXAMPLE]).tolist()]
    tensor = {"name": "input-0", "shape": [2, WIDTH], "datatype": "FP64", "data": codes}
    response = client.post(INFER, json={"inputs": [tensor]})
    if ONE_MATRIX:
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [example_label, example_label]
    else:
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error.startswith("input-0: ") and MATRIX_REFUSAL in error, error


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
    if not REQUIRED.nullable:  # null for a feature that needs a value
        inputs = v2_tensors([{**EXAMPLE, REQUIRED.name: None}])
        response = client.post(INFER, json={"inputs": inputs})
        assert response.status_code == 400
        assert response.json()["error"].startswith(f"{REQUIRED.name}: ")
    inputs = v2_tensors([EXAMPLE])
    inputs[FEATURE_NAMES.index(NUMERIC.name)]["data"] = [float("nan")]
    nan = json.dumps({"inputs": inputs})  # NaN, which is not JSON
    assert client.post(INFER, content=nan).status_code == 400
    assert client.post(INFER, content=b"{").status_code == 400


def test_an_input_given_twice_is_400_naming_it(client: TestClient) -> None:
    inputs = v2_tensors([EXAMPLE])
    response = client.post(INFER, json={"inputs": [*inputs, inputs[0]]})
    assert response.status_code == 400
    assert response.json()["error"] == (
        f"{FEATURE_NAMES[0]}: input {FEATURE_NAMES[0]!r} is given 2 times; send it once"
    )


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
