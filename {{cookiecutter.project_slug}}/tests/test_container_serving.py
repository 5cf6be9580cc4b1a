"""Serving for every platform, checked against the running image: KServe V2 (with the
off-the-shelf Triton client, binary and JSON, and malformed binary bodies), SageMaker, MLflow
forms, probes, metrics, logs, auth, limits."""

import csv
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME

from .conftest import (
    CLASSES,
    EXAMPLE,
    MATRIX_REFUSAL,
    NUMERIC,
    ONE_MATRIX,
    REGRESSION,
    UNKNOWN,
    V2_OUTPUTS,
    Tensor,
    as_answers,
    as_float32,
    as_matrix,
    assert_consistent,
    binary_inputs,
    csv_line,
    feature_tensors,
    metric,
    same_answers,
    v2_body,
    v2_probabilities,
    varied_rows,
)
from .docker_support import serving

WIDTH = len(FEATURE_NAMES)

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def server(docker: Any, image: str) -> Any:
    with serving(docker, image) as running:
        yield running


def test_v2_metadata_with_the_triton_client(server: Any) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == PROJECT_NAME
    assert "binary_tensor_data" in metadata["extensions"]
    assert client.is_model_ready(PROJECT_NAME)
    model = client.get_model_metadata(PROJECT_NAME)
    assert [i["name"] for i in model["inputs"]] == list(FEATURE_NAMES)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_v2_infer_with_the_triton_client(server: Any, binary: bool) -> None:
    """The client as it comes (binary data in and out), and with binary_data=False: one
    tensor per feature, numbers in FP64 and in FP32, each answering as /predict; and one
    [N, features] tensor, which answers the same when no feature is a category and is
    refused with a 400 that says to send one tensor per feature when one is. JSON carries no
    NaN: rows with a missing value go as binary data only."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    rows = varied_rows(complete=not binary)

    def inputs(tensors: list[Tensor]) -> list[Any]:
        sent = []
        for tensor in tensors:
            data = triton.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
            data.set_data_from_numpy(tensor.array, binary_data=binary)
            sent.append(data)
        return sent

    def check(tensors: list[Tensor], records: list[dict[str, Any]], **options: Any) -> None:
        """The answer to the tensors is /predict's answer for the records the server saw."""
        expected = httpx.post(server.url + "/predict", json=records).json()
        if not binary:
            options["outputs"] = [
                triton.InferRequestedOutput(n, binary_data=False) for n in V2_OUTPUTS
            ]
        result = client.infer(PROJECT_NAME, inputs(tensors), **options)
        for name in V2_OUTPUTS:
            assert ("data" in result.get_output(name)) is not binary
        # labels arrive as bytes from binary data, as text from JSON
        assert as_answers(result.as_numpy("predict")) == expected["predictions"]
        if CLASSES:
            probabilities = [list(row.values()) for row in expected["probabilities"]]
            np.testing.assert_array_equal(result.as_numpy("predict_proba"), probabilities)
        else:
            assert result.get_output("predict_proba") is None

    check(feature_tensors(rows), rows)
    version = client.get_model_metadata(PROJECT_NAME)["versions"][0]
    check(feature_tensors(rows), rows, model_version=version)
    check(feature_tensors(rows, numbers="FP32"), as_float32(rows))  # what float32 holds
    matrix = [Tensor("input-0", "FP64", as_matrix(rows))]
    if ONE_MATRIX:
        check(matrix, rows)
    else:
        with pytest.raises(InferenceServerException) as raised:
            client.infer(PROJECT_NAME, inputs(matrix))
        assert raised.value.status() == "400"
        assert raised.value.message().startswith("input-0: ")
        assert MATRIX_REFUSAL in raised.value.message()


def test_v2_malformed_binary_bodies_are_400_and_the_server_goes_on(
    server: Any, example_label: Any
) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    url = f"{server.url}/v2/models/{PROJECT_NAME}/infer"
    header = "Inference-Header-Content-Length"
    # EXAMPLE as one tensor per feature, all binary data
    tensors = feature_tensors([EXAMPLE])
    inputs, buffers = binary_inputs(tensors)
    data = b"".join(buffers)
    first, last, last_size = inputs[0]["name"], inputs[-1]["name"], len(buffers[-1])

    def post(body: bytes, length: str | None = None, **first_changes: Any) -> httpx.Response:
        """The inputs, the first one changed, then `body` as their binary data."""
        changed = [{**inputs[0], **first_changes}, *inputs[1:]]
        request = json.dumps({"inputs": changed})
        length = str(len(request)) if length is None else length
        return httpx.post(url, content=request.encode() + body, headers={header: length})

    def sized(size: int) -> dict[str, Any]:
        return {"parameters": {"binary_data_size": size}}

    for response, message in [
        (post(data + bytes(8)), f"add up to {len(data)}"),
        (
            post(data[:-1]),
            f"{last}: binary_data_size is {last_size} bytes but only {last_size - 1}",
        ),
        (
            post(bytes(4) + data[len(buffers[0]) :], datatype="FP64", **sized(4)),
            f"{first}: binary data has 4 bytes but shape [1] of FP64 needs 8",
        ),
        (
            post(bytes(2) + data[len(buffers[0]) :], datatype="BF16", **sized(2)),
            f"{first}: datatype 'BF16' is not supported",
        ),
        (post(data, length="-3"), f"{header}: must be the length"),
        (post(data, length="100000"), f"{header}: must be the length"),
    ]:
        assert response.status_code == 400, response.text
        assert message in response.json()["error"], response.json()

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    text = triton.InferInput("input-0", [1, WIDTH], "BYTES")
    text.set_data_from_numpy(np.array([[b"wide"] * WIDTH], dtype=object))  # not values
    with pytest.raises(InferenceServerException) as raised:
        client.infer(PROJECT_NAME, [text])
    assert raised.value.status() == "400"
    assert raised.value.message().startswith("input-0: ")

    good = []
    for tensor in tensors:
        infer_input = triton.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
        infer_input.set_data_from_numpy(tensor.array)
        good.append(infer_input)
    answer = client.infer(PROJECT_NAME, good).as_numpy("predict")
    assert same_answers(as_answers(answer), [example_label])
    assert httpx.get(server.url + "/readyz").status_code == 200


def test_every_protocol_gives_the_same_consistent_answer(server: Any) -> None:
    """A classifier's labels and probabilities, a regressor's values, alike on /predict, V2
    and /invocations."""
    rows = varied_rows()
    own = httpx.post(server.url + "/predict", json=rows).json()
    if CLASSES:
        assert sorted(set(own["predictions"])) == sorted(CLASSES), "the rows cover every class"
        assert_consistent(own["predictions"], own["probabilities"])
    else:
        assert "probabilities" not in own
        assert all(isinstance(value, float) for value in own["predictions"])
        assert len(set(own["predictions"])) > 1, "the rows get different values"
    v2 = httpx.post(
        f"{server.url}/v2/models/{PROJECT_NAME}/infer",
        json=v2_body([list(row.values()) for row in rows]),
    ).json()
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert list(outputs) == V2_OUTPUTS
    assert outputs["predict"]["data"] == own["predictions"]
    if CLASSES:
        classes = list(own["probabilities"][0])
        assert v2_probabilities(outputs["predict_proba"], classes) == own["probabilities"]
    sagemaker = httpx.post(server.url + "/invocations", json={"instances": rows}).json()
    assert sagemaker == own


def test_metrics_count_what_happened(server: Any) -> None:
    def scrape() -> str:
        return httpx.get(server.url + "/metrics").text

    predict = {"route": "/predict", "method": "POST"}
    before = scrape()
    for _ in range(3):
        assert httpx.post(server.url + "/predict", json=[EXAMPLE, EXAMPLE]).status_code == 200
    assert httpx.post(server.url + "/predict", json={UNKNOWN: 1}).status_code == 422
    after = scrape()

    def grew(name: str, **labels: Any) -> float:
        return metric(after, name, **labels) - metric(before, name, absent=0, **labels)

    assert grew("http_requests_total", **predict, status="200") == 3
    assert grew("http_requests_total", **predict, status="422") == 1
    assert grew("predictions_total") == 6
    assert grew("model_batch_rows_sum") == 6
    assert metric(after, "model_load_seconds") > 0


def test_v2_errors_have_the_protocol_shape(server: Any) -> None:
    response = httpx.post(f"{server.url}/v2/models/other/infer", json={"inputs": []})
    assert response.status_code == 404 and "error" in response.json()
    too_wide = list(range(WIDTH + 1))
    bad = {"inputs": [{"name": "x", "shape": [1, WIDTH + 1], "datatype": "FP32", "data": too_wide}]}
    response = httpx.post(f"{server.url}/v2/models/{PROJECT_NAME}/infer", json=bad)
    assert response.status_code == 400 and "error" in response.json()


def test_sagemaker_ping_and_invocations(server: Any, example_label: Any) -> None:
    assert httpx.get(server.url + "/ping").status_code == 200
    as_json = httpx.post(server.url + "/invocations", json=[EXAMPLE, EXAMPLE])
    # the image's model, trained on the same data with the same seed
    assert same_answers(as_json.json()["predictions"], [example_label, example_label])
    as_csv = httpx.post(
        server.url + "/invocations",
        content=csv_line(EXAMPLE) + "\n",
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    # no header line: the label (or value), then each class's probability
    cells = next(csv.reader(as_csv.text.splitlines()))
    assert len(cells) == 1 + len(CLASSES), cells
    assert same_answers([float(cells[0]) if REGRESSION else cells[0]], [example_label]), cells


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": list(EXAMPLE), "data": [list(EXAMPLE.values())]}},
        {"dataframe_records": [EXAMPLE]},
        {"instances": [EXAMPLE]},
        {"inputs": {k: [v] for k, v in EXAMPLE.items()}},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_mlflow_forms(server: Any, body: dict[str, Any], example_label: Any) -> None:
    response = httpx.post(server.url + "/invocations", json=body)
    assert response.status_code == 200
    assert same_answers(response.json()["predictions"], [example_label])


def test_metrics_logs_and_request_ids(server: Any) -> None:
    httpx.post(server.url + "/predict", json=EXAMPLE, headers={"X-Request-ID": "trace-42"})
    echoed = httpx.get(server.url + "/livez", headers={"X-Request-ID": "trace-43"})
    assert echoed.headers["x-request-id"] == "trace-43"
    text = httpx.get(server.url + "/metrics").text
    assert metric(text, "http_requests_total", route="/predict", status="200") >= 1
    assert metric(text, "http_requests_in_flight") == 1
    deadline = time.time() + 5  # access lines are written in batches, within 50 ms
    while True:
        lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        found = [line for line in lines if line.get("request_id") == "trace-42"]
        if found or time.time() > deadline:
            break
        time.sleep(0.05)
    assert found, "no access log line for the request"
    request = found[0]
    assert request["route"] == "/predict" and request["status"] == 200 and request["latency_ms"] > 0


def test_livez_stays_fast_while_predictions_saturate_the_cpu(server: Any) -> None:
    stop = threading.Event()
    big = [EXAMPLE] * 2000

    def hammer() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.post(server.url + "/predict", json=big)

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        latencies = []
        with httpx.Client(timeout=5) as client:
            for _ in range(40):
                started = time.perf_counter()
                assert client.get(server.url + "/livez").status_code == 200
                latencies.append(time.perf_counter() - started)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert max(latencies) < 1.0, "liveness must not queue behind predictions (sanity bound)"


def test_limits(docker: Any, image: str) -> None:
    limit = 20 * (len(json.dumps(EXAMPLE)) + 2)  # room for 20 records, not for the 40 sent
    env = {"MAX_REQUEST_BYTES": str(limit), "MAX_BATCH_ROWS": "5", "LOG_LEVEL": "WARNING"}
    with serving(docker, image, environment=env) as limited:
        too_big = httpx.post(limited.url + "/predict", json=[EXAMPLE] * 40)
        assert too_big.status_code == 413 and f"MAX_REQUEST_BYTES={limit}" in too_big.text
        too_many = httpx.post(limited.url + "/predict", json=[EXAMPLE] * 6)
        assert too_many.status_code == 413 and "MAX_BATCH_ROWS=5" in too_many.text
        infer = f"/v2/models/{PROJECT_NAME}/infer"
        six_rows = v2_body([list(EXAMPLE.values())] * 6)
        for path, body, key in (
            ("/invocations", {"instances": [EXAMPLE] * 6}, "detail"),
            (infer, six_rows, "error"),
        ):
            refused = httpx.post(limited.url + path, json=body)
            assert refused.status_code == 413 and "MAX_BATCH_ROWS=5" in refused.json()[key], path

        def chunked() -> Any:  # no Content-Length: the limit applies while the body streams in
            for _ in range(40):
                yield json.dumps(EXAMPLE).encode() + b","

        for path, key in (("/predict", "detail"), ("/invocations", "detail"), (infer, "error")):
            streamed = httpx.post(limited.url + path, content=chunked())
            assert streamed.status_code == 413, path
            assert f"MAX_REQUEST_BYTES={limit}" in streamed.json()[key], path
        nan = httpx.post(
            limited.url + "/invocations",
            content=csv_line({**EXAMPLE, NUMERIC.name: "nan"}),
            headers={"Content-Type": "text/csv"},
        )
        assert nan.status_code == 422
        settings = httpx.get(limited.url + "/metadata").json()["settings"]
        assert settings["MAX_BATCH_ROWS"] == 5 and settings["API_TOKEN"] is False
        assert settings["LOG_LEVEL"] == "warning"
        time.sleep(0.2)  # past the access log's flush interval
        assert '"logger":"access"' not in limited.logs(), (
            "LOG_LEVEL=WARNING keeps request lines out"
        )


def test_bearer_token_from_a_file(docker: Any, image: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("t0ken\n")
    secret.chmod(0o644)
    run: dict[str, Any] = {
        "environment": {"API_TOKEN_FILE": "/run/secrets/token"},
        "volumes": {str(secret): {"bind": "/run/secrets/token", "mode": "ro"}},
    }
    with serving(docker, image, **run) as locked:
        assert httpx.post(locked.url + "/predict", json=EXAMPLE).status_code == 401
        ok = httpx.post(
            locked.url + "/predict", json=EXAMPLE, headers={"Authorization": "Bearer t0ken"}
        )
        assert ok.status_code == 200
        assert httpx.get(locked.url + "/v2/health/ready").status_code == 200
        assert httpx.get(f"{locked.url}/v2/models/{PROJECT_NAME}/ready").status_code == 200
        refused = httpx.get(f"{locked.url}/v2/models/{PROJECT_NAME}")
        assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
        assert httpx.get(locked.url + "/metrics").status_code == 200
        metadata = httpx.get(locked.url + "/metadata", headers={"Authorization": "Bearer t0ken"})
        assert "t0ken" not in metadata.text
