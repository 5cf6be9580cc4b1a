"""Serving for every platform, checked against the running image: KServe V2 (with the
off-the-shelf Triton client, binary and JSON, and malformed binary bodies), SageMaker, MLflow
forms, probes, metrics, logs, auth, limits."""

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME

from .conftest import (
    CLASSES,
    EXAMPLE,
    NUMERIC,
    UNKNOWN,
    as_matrix,
    as_records,
    assert_consistent,
    csv_line,
    metric,
    needs_one_matrix,
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


@needs_one_matrix
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_v2_infer_with_the_triton_client(server: Any, binary: bool) -> None:
    """The client as it comes (binary data in and out), and with binary_data=False: one
    [N, features] tensor, or one tensor per feature in FP64 and FP32, each answering as
    /predict."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    rows = as_matrix(varied_rows())

    def tensor(name: str, array: np.ndarray, datatype: str) -> Any:
        data = triton.InferInput(name, list(array.shape), datatype)
        if binary:
            data.set_data_from_numpy(array)
        else:
            data.set_data_from_numpy(array, binary_data=False)
        return data

    def check(inputs: list[Any], sent: np.ndarray, **options: Any) -> None:
        """The answer to `inputs` is /predict's answer for the rows the server saw."""
        records = as_records(pd.DataFrame(sent.astype(np.float64), columns=list(FEATURE_NAMES)))
        expected = httpx.post(server.url + "/predict", json=records).json()
        if not binary:
            names = ("predict", "predict_proba")
            options["outputs"] = [triton.InferRequestedOutput(n, binary_data=False) for n in names]
        result = client.infer(PROJECT_NAME, inputs, **options)
        for name in ("predict", "predict_proba"):
            assert ("data" in result.get_output(name)) is not binary
        labels = result.as_numpy("predict").tolist()
        if binary:  # BYTES elements arrive as bytes from binary data, as text from JSON
            labels = [label.decode() for label in labels]
        assert labels == expected["predictions"]
        probabilities = [list(row.values()) for row in expected["probabilities"]]
        np.testing.assert_array_equal(result.as_numpy("predict_proba"), probabilities)

    check([tensor("input-0", rows, "FP64")], rows)
    version = client.get_model_metadata(PROJECT_NAME)["versions"][0]
    check([tensor("input-0", rows, "FP64")], rows, model_version=version)
    check([tensor(n, rows[:, j], "FP64") for j, n in enumerate(FEATURE_NAMES)], rows)
    single = rows.astype(np.float32)  # the values the server sees are float32's
    check([tensor(n, single[:, j], "FP32") for j, n in enumerate(FEATURE_NAMES)], single)


@needs_one_matrix
def test_v2_malformed_binary_bodies_are_400_and_the_server_goes_on(
    server: Any, example_label: str
) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    url = f"{server.url}/v2/models/{PROJECT_NAME}/infer"
    header = "Inference-Header-Content-Length"
    row = as_matrix([EXAMPLE]).astype("<f8").tobytes()
    full = len(row)

    def post(size: int, datatype: str, data: bytes, length: str | None = None) -> httpx.Response:
        tensor = {"name": "input-0", "shape": [1, WIDTH], "datatype": datatype}
        request = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": size}}]})
        length = str(len(request)) if length is None else length
        return httpx.post(url, content=request.encode() + data, headers={header: length})

    for response, message in [
        (post(full, "FP64", row + bytes(8)), f"input-0 {full}) add up to {full}"),
        (
            post(full, "FP64", row[:-4]),
            f"input-0: binary_data_size is {full} bytes but only {full - 4}",
        ),
        (
            post(full - 8, "FP64", row[:-8]),
            f"input-0: binary data has {full - 8} bytes but shape [1, {WIDTH}]",
        ),
        (post(full // 2, "BF16", row[: full // 2]), "input-0: datatype 'BF16' is not supported"),
        (post(full, "FP64", row, length="-3"), f"{header}: must be the length"),
        (post(full, "FP64", row, length="100000"), f"{header}: must be the length"),
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

    matrix = triton.InferInput("input-0", [1, WIDTH], "FP64")
    matrix.set_data_from_numpy(as_matrix([EXAMPLE]))
    answer = client.infer(PROJECT_NAME, [matrix]).as_numpy("predict").tolist()
    assert answer == [example_label.encode()]
    assert httpx.get(server.url + "/readyz").status_code == 200


def test_every_protocol_gives_the_same_consistent_answer(server: Any) -> None:
    rows = varied_rows()
    own = httpx.post(server.url + "/predict", json=rows).json()
    assert sorted(set(own["predictions"])) == sorted(CLASSES), "the rows cover every class"
    assert_consistent(own["predictions"], own["probabilities"])
    classes = list(own["probabilities"][0])
    v2 = httpx.post(
        f"{server.url}/v2/models/{PROJECT_NAME}/infer",
        json=v2_body([list(row.values()) for row in rows]),
    ).json()
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert outputs["predict"]["data"] == own["predictions"]
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


def test_sagemaker_ping_and_invocations(server: Any, example_label: str) -> None:
    assert httpx.get(server.url + "/ping").status_code == 200
    as_json = httpx.post(server.url + "/invocations", json=[EXAMPLE, EXAMPLE])
    assert as_json.json()["predictions"] == [example_label, example_label]
    as_csv = httpx.post(
        server.url + "/invocations",
        content=csv_line(EXAMPLE) + "\n",
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0].startswith(f"{example_label},"), "no header line"


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
def test_mlflow_forms(server: Any, body: dict[str, Any], example_label: str) -> None:
    response = httpx.post(server.url + "/invocations", json=body)
    assert response.status_code == 200
    assert response.json()["predictions"] == [example_label]


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
