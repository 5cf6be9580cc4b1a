"""The HTTP API in-process: /predict, probes, metadata, errors, limits and auth."""

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.core.artifact import load_artifact
from {{ cookiecutter.package_name }}.core.model import MODEL_FILE
from {{ cookiecutter.package_name }}.core.schema import FEATURES, TASK
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import (
    CLASSES,
    EXAMPLE,
    NUMERIC,
    REFUSING,
    REGRESSION,
    REQUIRED,
    UNKNOWN,
    ModelDouble,
    Overflowing,
    as_matrix,
    assert_consistent,
    csv_line,
    live_server,
    make_settings,
    metric,
    predicted,
    v2_body,
    varied_rows,
    wait_until_ready,
    wrong_value,
)

# A record with a value of the wrong kind for the first feature that refuses one.
WRONG = {**EXAMPLE, REFUSING[0].name: wrong_value(REFUSING[0])}


def test_predict_one_record(client: TestClient, trained: Settings, example_label: Any) -> None:
    response = client.post("/predict", json=EXAMPLE)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == [example_label]
    if REGRESSION:  # a value, and no probabilities
        assert isinstance(body["predictions"][0], float) and "probabilities" not in body
    else:
        assert list(body["probabilities"][0]) == CLASSES
        assert_consistent(body["predictions"], body["probabilities"])
    metadata = load_artifact(trained.model_dir).metadata
    assert body["model_version"] == metadata["model_version"]


def test_predict_answers_what_the_model_says(client: TestClient, trained: Settings) -> None:
    rows = varied_rows()
    body = client.post("/predict", json=rows).json()
    model = load_artifact(trained.model_dir).model
    matrix = as_matrix(rows)
    assert body["predictions"] == model.predict(matrix).tolist()
    if REGRESSION:
        assert "probabilities" not in body
        assert all(isinstance(value, float) for value in body["predictions"])
        assert len(set(body["predictions"])) > 1, "the rows get different values"
        return
    served = np.array([list(row.values()) for row in body["probabilities"]])
    np.testing.assert_allclose(served, model.predict_proba(matrix), rtol=1e-12)
    assert sorted(set(body["predictions"])) == sorted(CLASSES), "the rows cover every class"
    assert_consistent(body["predictions"], body["probabilities"])


def test_predict_a_list_keeps_order(
    client: TestClient, served_model: Any, example_label: Any, other_record: dict[str, Any]
) -> None:
    [other_label] = predicted(served_model, [other_record])
    assert other_label != example_label
    response = client.post("/predict", json=[EXAMPLE, other_record, EXAMPLE])
    assert response.json()["predictions"] == [example_label, other_label, example_label]


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/predict", WRONG, ["body", REFUSING[0].name]),
        ("/predict", [EXAMPLE, {**EXAMPLE, REQUIRED.name: None}], ["body", 1, REQUIRED.name]),
        (
            "/predict",
            {k: v for k, v in EXAMPLE.items() if k != FEATURES[-1].name},
            ["body", FEATURES[-1].name],
        ),
        ("/predict", {**EXAMPLE, UNKNOWN: "red"}, ["body", UNKNOWN]),
        ("/predict", [], ["body"]),
        ("/predict", "not a record", ["body"]),
        (
            "/invocations",
            {**EXAMPLE, REFUSING[-1].name: wrong_value(REFUSING[-1])},
            ["body", REFUSING[-1].name],
        ),
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
    """1e999 is valid JSON, and a float parser reads it as infinity."""
    fields = [
        f"{json.dumps(name)}: {'1e999' if name == NUMERIC.name else json.dumps(value)}"
        for name, value in EXAMPLE.items()
    ]
    response = client.post("/predict", content="{" + ", ".join(fields) + "}")
    assert response.status_code == 422


def test_values_the_model_cannot_score_are_refused_not_answered_with_nan(
    client: TestClient,
) -> None:
    holder = client.app.state.service.holder  # type: ignore[attr-defined]
    holder.model = Overflowing(holder.model)
    far = {**EXAMPLE, NUMERIC.name: 1e308}
    response = client.post("/predict", json=[EXAMPLE, far])
    assert response.status_code == 422
    assert "row 1 " in response.json()["detail"][0]["msg"]
    csv = csv_line(far)
    as_csv = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert as_csv.status_code == 422
    infer_path = "/v2/models/{{ cookiecutter.project_slug }}/infer"
    infer = client.post(infer_path, json=v2_body([list(far.values())]))
    assert infer.status_code == 400 and "row 0 " in infer.json()["error"]


def test_openapi_shows_the_features(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    record = schema["components"]["schemas"]["Record"]
    assert set(record["properties"]) == set(EXAMPLE)
    json_types = {"number": "number", "integer": "integer", "boolean": "boolean"}
    typed = [f for f in FEATURES if f.type in json_types and not f.nullable]
    assert {f.name: record["properties"][f.name]["type"] for f in typed} == {
        f.name: json_types[f.type] for f in typed
    }
    assert record["examples"] == [EXAMPLE]
    assert client.get("/docs").status_code == 200


def test_probes_and_metadata(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"
    metadata = client.get("/metadata").json()
    assert metadata["model"]["classes"] == CLASSES
    assert metadata["model"]["task"] == TASK
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


def answer(cell: str) -> Any:
    """A CSV answer's prediction cell as /predict answers it: a label, or a regressor's
    value."""
    return float(cell) if REGRESSION else cell


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/livez", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    assert len(client.get("/livez").headers["x-request-id"]) == 32


def test_metrics_count_requests_and_predictions(client: TestClient, trained: Settings) -> None:
    client.post("/predict", json=[EXAMPLE, EXAMPLE])
    client.post("/predict", json=EXAMPLE)
    client.post("/predict", json=WRONG)
    text = client.get("/metrics").text
    predict: dict[str, Any] = {"route": "/predict", "method": "POST"}
    assert metric(text, "http_requests_total", **predict, status="200") == 2
    assert metric(text, "http_requests_total", **predict, status="422") == 1
    assert metric(text, "http_request_duration_seconds_count", **predict) == 3
    assert metric(text, "http_request_duration_seconds_sum", **predict) > 0
    assert metric(text, "predictions_total") == 3
    assert metric(text, "model_batch_rows_count") == 2
    assert metric(text, "model_batch_rows_sum") == 3
    assert metric(text, "http_requests_in_flight") == 1  # the /metrics request itself
    assert metric(text, "model_load_seconds") > 0
    version = load_artifact(trained.model_dir).metadata["model_version"]
    assert metric(text, "model_info", version=version) == 1


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
    assert response.json() == client.post("/predict", json=EXAMPLE).json()


def test_invocations_csv_in_and_out(
    client: TestClient, served_model: Any, other_record: dict[str, Any]
) -> None:
    records = [EXAMPLE, other_record]
    rows = "".join(csv_line(record) + "\n" for record in records)
    response = client.post("/invocations", content=rows, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    labels = predicted(served_model, records)
    assert [answer(line.split(",")[0]) for line in lines] == labels, "no header line"
    assert len(set(labels)) == 2
    if REGRESSION:  # the value alone
        assert [line.count(",") for line in lines] == [0, 0]
        return
    as_json = client.post("/predict", json=records).json()
    for line, expected in zip(lines, as_json["probabilities"], strict=True):
        assert [float(v) for v in line.split(",")[1:]] == list(expected.values())


def test_batch_transform_gets_one_line_per_record_in_order(trained: Settings) -> None:
    """Batch Transform (MULTI_RECORD, SplitType=Line) joins answer lines to input lines: a
    body of 1,000 records, more than MAX_BATCH_ROWS, gets 1,000 lines in the same order."""
    settings = trained.model_copy(update={"max_batch_rows": 300})
    sample = varied_rows(200)
    rows = [sample[i % len(sample)] for i in range(1_000)]
    csv_body = "".join(csv_line(row) + "\n" for row in rows)
    jsonl_body = "".join(json.dumps(row) + "\n" for row in rows)
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        params = client.get("/execution-parameters").json()
        assert params["BatchStrategy"] == "MULTI_RECORD" and params["MaxConcurrentTransforms"] >= 1
        assert params["MaxPayloadInMB"] == settings.max_request_bytes // 2**20
        answers_in_slices = [
            client.post("/predict", json=rows[start : start + 250]).json()
            for start in range(0, 1_000, 250)
        ]
        expected = [label for answer in answers_in_slices for label in answer["predictions"]]
        as_csv = client.post("/invocations", content=csv_body, headers={"Content-Type": "text/csv"})
        assert [answer(line.split(",")[0]) for line in as_csv.text.splitlines()] == expected
        as_jsonl = client.post(
            "/invocations",
            content=jsonl_body,
            headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
        )
        answers = [json.loads(line) for line in as_jsonl.text.splitlines()]
        assert [a["prediction"] for a in answers] == expected
        classes = load_artifact(trained.model_dir).metadata["classes"]
        if REGRESSION:
            assert classes == [] and all(list(a) == ["prediction"] for a in answers)
        else:
            assert list(answers[0]["probabilities"]) == classes
        line = csv_line(EXAMPLE) + "\n"
        too_big = line * (settings.max_request_bytes // len(line) + 1)
        refused = client.post("/invocations", content=too_big, headers={"Content-Type": "text/csv"})
        assert refused.status_code == 413


@pytest.mark.parametrize(
    ("body", "content_type", "status", "where"),
    [
        ({"instances": [EXAMPLE], "inputs": [EXAMPLE]}, "application/json", 422, "exactly one"),
        ({"instances": [WRONG]}, "application/json", 422, REFUSING[0].name),
        (
            csv_line({**EXAMPLE, REFUSING[-1].name: wrong_value(REFUSING[-1])}) + "\n",
            "text/csv",
            422,
            REFUSING[-1].name,
        ),
        ("a=b", "application/x-www-form-urlencoded", 415, "Content-Type"),
    ],
)
def test_invocations_reject_bad_input(
    client: TestClient, body: object, content_type: str, status: int, where: str
) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
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
    (settings.model_dir / MODEL_FILE).write_bytes(b"not a model")
    with TestClient(create_app(settings)) as test_client:
        for _ in range(200):
            ready = test_client.get("/readyz").json()
            if ready["status"] != "loading":
                break
        assert ready["status"] == "failed"
        assert ready["reason"]


class SlowModel(ModelDouble):
    """The trained model, slowed down, noting the thread of each call."""

    def __init__(self, model: Any, seconds: float) -> None:
        super().__init__(model)
        self.seconds = seconds
        self.threads: list[str] = []

    def called(self, matrix: Any) -> None:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.seconds)


def test_model_calls_run_off_the_event_loop(trained: Settings, example_label: Any) -> None:
    """While a slow model call runs, the probes still answer: /livez comes back while the
    prediction is still waiting for its model call."""
    with live_server(trained) as (url, app), ThreadPoolExecutor(1) as pool:
        holder = app.state.service.holder
        slow = holder.model = SlowModel(holder.model, seconds=3.0)
        prediction = pool.submit(httpx.post, url + "/predict", json=EXAMPLE, timeout=30)
        deadline = time.monotonic() + 5
        while not slow.threads:
            assert time.monotonic() < deadline, "the model was never called"
            time.sleep(0.01)
        assert httpx.get(url + "/livez", timeout=30).status_code == 200
        assert not prediction.done(), "/livez waited for the model call"
        assert prediction.result().json()["predictions"] == [example_label]
    assert [name.startswith("model") for name in slow.threads] == [True]


class FailingModel(ModelDouble):
    """A model whose every call fails, as a bug in it would."""

    def __init__(self) -> None:
        super().__init__(None)

    @property
    def classes_(self) -> Any:
        return np.array(CLASSES)

    def called(self, matrix: Any) -> None:
        raise RuntimeError("a bug in the model code")


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        ("/predict", EXAMPLE, "detail"),
        (
            "/v2/models/{{ cookiecutter.project_slug }}/infer",
            v2_body([list(EXAMPLE.values())]),
            "error",
        ),
    ],
)
def test_unhandled_error_is_our_json_500_with_the_request_id(
    trained: Settings, caplog: pytest.LogCaptureFixture, path: str, body: object, key: str
) -> None:
    app = create_app(trained)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        wait_until_ready(test_client)
        app.state.service.holder.model = FailingModel()
        with caplog.at_level(logging.ERROR):
            response = test_client.post(path, json=body, headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.json() == {key: "internal server error (request id req-500)"}
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert record.request_id == "req-500"  # type: ignore[attr-defined]
    assert record.exc_info is not None and "a bug in the model code" in str(record.exc_info[1])


def test_each_protocol_keeps_its_error_shape(trained: Settings) -> None:
    settings = trained.model_copy(update={"max_request_bytes": 100})
    infer = "/v2/models/{{ cookiecutter.project_slug }}/infer"

    def chunked(size: int) -> Any:
        yield b"{" + b" " * size + b"}"

    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        for path, key in (("/predict", "detail"), ("/invocations", "detail"), (infer, "error")):
            response = test_client.post(path, content=chunked(500))
            assert response.status_code == 413, path
            assert list(response.json()) == [key], path
            assert "MAX_REQUEST_BYTES=100" in response.json()[key]
        assert list(test_client.get("/v2/models/x/y/z").json()) == ["error"]
        assert list(test_client.get("/nowhere").json()) == ["detail"]


def test_v2_model_ready_is_public_and_v2_refusals_keep_the_v2_shape(trained: Settings) -> None:
    settings = trained.model_copy(update={"api_token": SecretStr("s3cret")})
    name = "{{ cookiecutter.project_slug }}"
    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        assert test_client.get(f"/v2/models/{name}/ready").status_code == 200
        refused = test_client.get(f"/v2/models/{name}")
        assert refused.status_code == 401 and list(refused.json()) == ["error"]
        assert list(test_client.get("/metadata").json()) == ["detail"]
