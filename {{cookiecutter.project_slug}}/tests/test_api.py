"""The HTTP API in-process: /predict, probes, metadata, errors, limits and auth."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import EXAMPLE, make_settings, wait_until_ready


def test_predict_one_record(client: TestClient) -> None:
    response = client.post("/predict", json=EXAMPLE)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == ["setosa"]
    assert set(body["probabilities"][0]) == {"setosa", "versicolor", "virginica"}
    assert body["model_version"]


def test_predict_a_list_keeps_order(client: TestClient) -> None:
    other = {**EXAMPLE, "petal_length": 6.0, "petal_width": 2.2}
    response = client.post("/predict", json=[EXAMPLE, other, EXAMPLE])
    assert response.json()["predictions"] == ["setosa", "virginica", "setosa"]


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/predict", {**EXAMPLE, "sepal_length": "wide"}, ["body", "sepal_length"]),
        ("/predict", [EXAMPLE, {**EXAMPLE, "petal_width": None}], ["body", 1, "petal_width"]),
        (
            "/predict",
            {k: v for k, v in EXAMPLE.items() if k != "sepal_width"},
            ["body", "sepal_width"],
        ),
        ("/predict", {**EXAMPLE, "colour": "red"}, ["body", "colour"]),
        ("/predict", [], ["body"]),
        ("/predict", "not a record", ["body"]),
        ("/invocations", {**EXAMPLE, "sepal_width": "x"}, ["body", "sepal_width"]),
        (
            "/invocations",
            {"dataframe_split": {"columns": list(EXAMPLE), "data": 5}},
            ["body", "dataframe_split", "data"],
        ),
    ],
)
def test_bad_body_is_422_naming_the_field(
    client: TestClient, path: str, body: object, location: list[object]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location


def test_infinity_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict",
        content=b'{"sepal_length": 1e999, "sepal_width": 1, "petal_length": 1, "petal_width": 1}',
    )
    assert response.status_code == 422


def test_openapi_shows_the_features(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    record = schema["components"]["schemas"]["Record"]
    assert set(record["properties"]) == set(EXAMPLE)
    assert record["properties"]["sepal_length"]["type"] == "number"
    assert record["examples"] == [EXAMPLE]
    assert client.get("/docs").status_code == 200


def test_probes_and_metadata(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"
    metadata = client.get("/metadata").json()
    assert metadata["model"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert metadata["settings"]["PORT"] == 8080


def test_not_ready_without_a_model_but_live(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as test_client:
        for _ in range(100):
            if test_client.get("/readyz").json()["status"] != "loading":
                break
        ready = test_client.get("/readyz")
        assert ready.status_code == 503
        assert "no model in" in ready.json()["reason"]
        assert test_client.get("/livez").status_code == 200
        assert test_client.get("/v2/health/ready").status_code == 503
        assert "no model in" in test_client.get("/metadata").json()["reason"]
        assert test_client.post("/predict", json=EXAMPLE).status_code == 503


def test_too_many_rows_is_413_with_the_limit(trained: Settings) -> None:
    settings = trained.model_copy(update={"max_batch_rows": 2})
    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        response = test_client.post("/predict", json=[EXAMPLE] * 3)
        assert response.status_code == 413
        assert "MAX_BATCH_ROWS=2" in response.json()["detail"]


def test_large_body_is_413_before_parsing(trained: Settings) -> None:
    settings = trained.model_copy(update={"max_request_bytes": 100})
    with TestClient(create_app(settings)) as test_client:
        response = test_client.post("/predict", json=[EXAMPLE] * 10)
        assert response.status_code == 413
        assert "MAX_REQUEST_BYTES=100" in response.json()["detail"]


def test_token_protects_all_but_health_and_metrics(trained: Settings) -> None:
    settings = trained.model_copy(update={"api_token": SecretStr("s3cret")})
    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        assert test_client.post("/predict", json=EXAMPLE).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert test_client.post("/predict", json=EXAMPLE, headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert test_client.post("/predict", json=EXAMPLE, headers=right).status_code == 200
        for path in (
            "/livez",
            "/readyz",
            "/ping",
            "/v2/health/live",
            "/v2/health/ready",
            "/metrics",
        ):
            assert test_client.get(path).status_code == 200, path
        for path in ("/metadata", "/v2"):
            assert test_client.get(path).status_code == 401, path
        assert "s3cret" not in test_client.get("/metadata", headers=right).text


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/livez", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    assert len(client.get("/livez").headers["x-request-id"]) == 32


def test_metrics_count_requests_and_predictions(client: TestClient) -> None:
    client.post("/predict", json=[EXAMPLE, EXAMPLE])
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert "predictions_total" in text
    assert "model_info{" in text
    assert "model_load_seconds" in text
    assert "http_requests_in_flight" in text
    assert "model_batch_rows_bucket" in text


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": list(EXAMPLE), "data": [list(EXAMPLE.values())]}},
        {"dataframe_records": [EXAMPLE]},
        {"instances": [EXAMPLE]},
        {"instances": [list(EXAMPLE.values())]},
        {"inputs": {k: [v] for k, v in EXAMPLE.items()}},
        {"inputs": [EXAMPLE]},
        [EXAMPLE],
        EXAMPLE,
    ],
)
def test_invocations_take_every_json_form(client: TestClient, body: object) -> None:
    response = client.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == ["setosa"]


def test_invocations_csv_in_and_out(client: TestClient) -> None:
    rows = "5.1,3.5,1.4,0.2\n6.9,3.1,5.4,2.1\n"
    response = client.post(
        "/invocations", content=rows, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert response.status_code == 200
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("prediction,probability_setosa")
    assert [line.split(",")[0] for line in lines[1:]] == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "where"),
    [
        ({"instances": [EXAMPLE], "inputs": [EXAMPLE]}, "application/json", 422, "exactly one"),
        ({"instances": [{**EXAMPLE, "sepal_width": "x"}]}, "application/json", 422, "sepal_width"),
        ("5.1,3.5,oops,0.2\n", "text/csv", 422, "petal_length"),
        ("a=b", "application/x-www-form-urlencoded", 415, "Content-Type"),
    ],
)
def test_invocations_reject_bad_input(
    client: TestClient, body: object, content_type: str, status: int, where: str
) -> None:
    data = body if isinstance(body, str) else __import__("json").dumps(body)
    response = client.post("/invocations", content=data, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert where in response.text


def test_settings_accept_upper_case_log_level_and_refuse_an_empty_token(tmp_path: Path) -> None:
    assert make_settings(tmp_path, log_level="INFO").log_level == "info"
    with pytest.raises(ValueError, match="empty"):
        make_settings(tmp_path, api_token=SecretStr(" ")).token()


def test_model_that_cannot_be_read_is_failed_not_loading(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.model_dir.mkdir(parents=True)
    (settings.model_dir / "metadata.json").write_text("[]")
    (settings.model_dir / "model.skops").write_bytes(b"not a model")
    with TestClient(create_app(settings)) as test_client:
        for _ in range(200):
            ready = test_client.get("/readyz").json()
            if ready["status"] != "loading":
                break
        assert ready["status"] == "failed"
        assert ready["reason"]
