"""The OpenAPI document: FastAPI's, from what each route declares, completed with what belongs
to no single route.

- The request schemas that routes refer to from `openapi_extra` (FastAPI sees no body
  parameter in a route that reads its raw body, so it cannot add them itself).
- What the request middleware answers before any route runs, in the route's error shape: 413
  for a body over MAX_REQUEST_BYTES on every operation that takes a body and, only when a
  token is set, the bearer scheme and 401 on every route that is not public. The document
  describes the server as it runs.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .auth import is_public
from .errors import is_v2
from .schemas import ProblemDetail, V2Error, ref, request_schemas

BEARER = "bearerAuth"


def _error(path: str, description: str) -> dict[str, Any]:
    model = V2Error if is_v2(path) else ProblemDetail
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(model.__name__)}},
    }


def openapi_document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(request_schemas())
    for model in (ProblemDetail, V2Error):
        schemas.setdefault(model.__name__, model.model_json_schema(ref_template=""))
    auth = app.state.settings.token() is not None
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            if "requestBody" in operation:
                responses.setdefault("413", _error(path, "Body over MAX_REQUEST_BYTES"))
            if auth and not is_public(path):
                operation["security"] = [{BEARER: []}]
                responses["401"] = _error(path, "Missing or wrong bearer token (API_TOKEN)")
    if auth:
        components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer"}}
    app.openapi_schema = document
    return document
