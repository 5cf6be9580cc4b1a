"""The OpenAPI document in-process: it declares every path parameter, body and answer, and the
bodies it documents are the ones the routes take. The fuzz test against the image
(test_container_openapi.py) then checks every answer against it."""

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import EXAMPLE, UNKNOWN, v2_body, v2_tensors, wait_until_ready

V2_MODEL_ROUTES = {
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/versions/{version}"),
    ("get", "/v2/models/{name}/ready"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("post", "/v2/models/{name}/versions/{version}/infer"),
}
PUBLIC_ROUTES = {
    ("get", "/livez"),
    ("get", "/readyz"),
    ("get", "/ping"),
    ("get", "/execution-parameters"),
    ("get", "/metrics"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}/ready"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
}
INVOCATION_TYPES = {"application/json", "text/csv", "application/jsonlines"}
ROW = list(EXAMPLE.values())
INFER = "/v2/models/{name}/infer"


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def body_validator(document: dict[str, Any], path: str, media_type: str) -> Any:
    """A validator of the documented request body, its references resolved in the document."""
    content = document["paths"][path]["post"]["requestBody"]["content"]
    schema = {**content[media_type]["schema"], "components": document["components"]}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/openapi.json").json()
    return body


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    assert set(operations(document)) >= V2_MODEL_ROUTES
    for (method, path), operation in operations(document).items():
        in_path = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == in_path, (method, path)
        assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")


def test_every_answer_has_a_documented_body(document: dict[str, Any]) -> None:
    for key, operation in operations(document).items():
        for status, response in operation["responses"].items():
            content = response.get("content")
            assert content and all(m.get("schema") for m in content.values()), (key, status)


def test_invocations_document_the_types_they_take_and_answer(document: dict[str, Any]) -> None:
    operation = document["paths"]["/invocations"]["post"]
    assert set(operation["requestBody"]["content"]) == INVOCATION_TYPES
    assert set(operation["responses"]["200"]["content"]) == INVOCATION_TYPES
    assert {"413", "415", "422", "503"} <= set(operation["responses"])


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/predict", EXAMPLE, 200),
        ("/predict", [EXAMPLE, EXAMPLE], 200),
        ("/predict", [], 422),
        ("/predict", {**EXAMPLE, UNKNOWN: "red"}, 422),
        ("/predict", [ROW], 422),
        ("/invocations", EXAMPLE, 200),
        ("/invocations", [EXAMPLE], 200),
        ("/invocations", [ROW, ROW], 200),
        ("/invocations", {"dataframe_split": {"columns": list(EXAMPLE), "data": [ROW]}}, 200),
        ("/invocations", {"dataframe_records": [EXAMPLE], "params": {"x": 1}}, 200),
        ("/invocations", {"instances": [ROW]}, 200),
        ("/invocations", {"inputs": {k: [v] for k, v in EXAMPLE.items()}}, 200),
        ("/invocations", ROW, 422),
        ("/invocations", {"instances": [EXAMPLE], "inputs": [EXAMPLE]}, 422),
        ("/invocations", {"dataframe_split": {"columns": list(EXAMPLE)[:-1], "data": [ROW]}}, 422),
        ("/invocations", {"instances": [ROW[:-1]]}, 422),
        (INFER, v2_body([ROW, ROW]), 200),
        (
            INFER,
            {
                "id": "r1",
                "inputs": v2_tensors([EXAMPLE], numbers="FP32"),
                "outputs": [{"name": "predict"}],
            },
            200,
        ),
        (INFER, {"inputs": []}, 400),
        (INFER, {**v2_body([ROW]), "outputs": [{"name": "colour"}]}, 400),
        (
            INFER,
            {"inputs": [{"name": "x", "shape": [1, len(ROW)], "datatype": "BYTES", "data": ROW}]},
            400,
        ),
    ],
)
def test_the_documented_json_bodies_are_the_ones_the_routes_take(
    client: TestClient, document: dict[str, Any], path: str, body: Any, status: int
) -> None:
    response = client.post(path.format(name=PROJECT_NAME), json=body)
    assert response.status_code == status, response.text
    valid = body_validator(document, path, "application/json").is_valid(body)
    assert valid == (status == 200)


def test_every_documented_example_body_is_answered(
    client: TestClient, document: dict[str, Any]
) -> None:
    """The example requests of the API docs ("Try it out") work as they stand."""
    examples = [
        (path, media_type, media["example"])
        for path, methods in document["paths"].items()
        for operation in methods.values()
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
        if "example" in media and "{version}" not in path
    ]
    assert {path for path, _, _ in examples} >= {INFER, "/invocations"}, examples
    for path, media_type, example in examples:
        response = client.post(
            path.format(name=PROJECT_NAME),
            content=example if isinstance(example, str) else json.dumps(example),
            headers={"content-type": media_type},
        )
        assert response.status_code == 200, (path, media_type, response.text)


def test_without_a_token_no_route_documents_401(document: dict[str, Any]) -> None:
    assert "securitySchemes" not in document["components"]
    for key, operation in operations(document).items():
        assert "401" not in operation["responses"] and "security" not in operation, key


def test_with_a_token_every_route_but_the_public_ones_documents_401(trained: Settings) -> None:
    settings = trained.model_copy(update={"api_token": SecretStr("s3cret")})
    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        document = test_client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"})
    schemes = document.json()["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for (method, path), operation in operations(document.json()).items():
        public = (method, path) in PUBLIC_ROUTES
        assert ("401" in operation["responses"]) != public, path
        assert ("security" in operation) != public, path
        if not public:
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            shape = "V2Error" if path.startswith("/v2") else "ProblemDetail"
            assert error == {"$ref": f"#/components/schemas/{shape}"}, path
