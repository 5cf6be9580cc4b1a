"""Serving for every platform, checked against the running image: KServe V2 (with the
off-the-shelf Triton client), SageMaker, MLflow forms, probes, metrics, logs, auth, limits."""

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.config import PROJECT_NAME
from {{ cookiecutter.package_name }}.features import FEATURE_NAMES, load_sample

from .conftest import (
    EXAMPLE,
    assert_consistent,
    metric,
    v2_body,
    v2_probabilities,
    varied_rows,
)
from .docker_support import serving

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def server(docker: Any, image: str) -> Any:
    with serving(docker, image) as running:
        yield running


def test_v2_with_the_triton_client(server: Any) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata()["name"] == PROJECT_NAME
    assert client.is_model_ready(PROJECT_NAME)
    metadata = client.get_model_metadata(PROJECT_NAME)
    assert [i["name"] for i in metadata["inputs"]] == list(FEATURE_NAMES)

    features, target = load_sample()
    rows = features.to_numpy(dtype=np.float32)[::10]
    matrix = triton.InferInput("input-0", list(rows.shape), "FP32")
    matrix.set_data_from_numpy(rows, binary_data=False)
    result = client.infer(PROJECT_NAME, [matrix])
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert np.mean(np.array(labels) == target.to_numpy()[::10]) > 0.9
    assert result.as_numpy("predict_proba").shape == (len(rows), 3)

    per_feature = []
    for j, name in enumerate(FEATURE_NAMES):
        tensor = triton.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(rows[:, j].astype(np.float64), binary_data=False)
        per_feature.append(tensor)
    again = client.infer(
        PROJECT_NAME,
        per_feature,
        outputs=[triton.InferRequestedOutput("predict", binary_data=False)],
    )
    assert [v.decode() if isinstance(v, bytes) else v for v in again.as_numpy("predict")] == labels
    version = metadata["versions"][0]
    pinned = client.infer(PROJECT_NAME, [matrix], model_version=version)
    assert [v.decode() if isinstance(v, bytes) else v for v in pinned.as_numpy("predict")] == labels
    assert np.argmax(pinned.as_numpy("predict_proba"), axis=1).tolist() == [
        ["setosa", "versicolor", "virginica"].index(label) for label in labels
    ]
    np.testing.assert_allclose(pinned.as_numpy("predict_proba").sum(axis=1), 1.0, rtol=1e-9)


def test_every_protocol_gives_the_same_consistent_answer(server: Any) -> None:
    rows = varied_rows()
    own = httpx.post(server.url + "/predict", json=rows).json()
    assert len(set(own["predictions"])) == 3, "the rows cover every class"
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
    assert httpx.post(server.url + "/predict", json={"x": 1}).status_code == 422
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, absent=0, **labels)

    assert grew("http_requests_total", **predict, status="200") == 3
    assert grew("http_requests_total", **predict, status="422") == 1
    assert grew("predictions_total") == 6
    assert grew("model_batch_rows_sum") == 6
    assert metric(after, "model_load_seconds") > 0


def test_v2_errors_have_the_protocol_shape(server: Any) -> None:
    response = httpx.post(f"{server.url}/v2/models/other/infer", json={"inputs": []})
    assert response.status_code == 404 and "error" in response.json()
    bad = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    response = httpx.post(f"{server.url}/v2/models/{PROJECT_NAME}/infer", json=bad)
    assert response.status_code == 400 and "error" in response.json()


def test_sagemaker_ping_and_invocations(server: Any) -> None:
    assert httpx.get(server.url + "/ping").status_code == 200
    as_json = httpx.post(server.url + "/invocations", json=[EXAMPLE, EXAMPLE])
    assert as_json.json()["predictions"] == ["setosa", "setosa"]
    as_csv = httpx.post(
        server.url + "/invocations",
        content="5.1,3.5,1.4,0.2\n",
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0].startswith("setosa,"), "no header line"


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
def test_mlflow_forms(server: Any, body: dict[str, Any]) -> None:
    response = httpx.post(server.url + "/invocations", json=body)
    assert response.status_code == 200
    assert response.json()["predictions"] == ["setosa"]


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
    env = {"MAX_REQUEST_BYTES": "2000", "MAX_BATCH_ROWS": "5", "LOG_LEVEL": "WARNING"}
    with serving(docker, image, environment=env) as limited:
        too_big = httpx.post(limited.url + "/predict", json=[EXAMPLE] * 40)
        assert too_big.status_code == 413 and "MAX_REQUEST_BYTES=2000" in too_big.text
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
            assert "MAX_REQUEST_BYTES=2000" in streamed.json()[key], path
        nan = httpx.post(
            limited.url + "/invocations", content="1,2,nan,4", headers={"Content-Type": "text/csv"}
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
    run = {
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
