"""`POST /predict` and `GET /metadata`: the project's own JSON API."""

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from ...features import InputError, mappings_to_matrix
from ..responses import FastJSONResponse
from ..routing import LeanRoute, service_of
from ..schemas import InvalidInput, MetadataResponse, PredictResponse, ProblemDetail, ref
from .common import prediction_body

router = APIRouter(tags=["predict"], route_class=LeanRoute)

# What the prediction routes answer besides 200. The middleware's own answers (401, and 413
# while the body is read) are declared for every route in openapi.py.
ERRORS: dict[int | str, dict[str, Any]] = {
    413: {
        "model": ProblemDetail,
        "description": "Body over MAX_REQUEST_BYTES or rows over MAX_BATCH_ROWS",
    },
    422: {
        "model": InvalidInput,
        "description": "Invalid input: `detail[].loc` is the path of the wrong field",
    },
    503: {"model": ProblemDetail, "description": "No model loaded"},
}


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InputError([], f"body is not valid JSON: {error}") from None


def records_matrix(payload: Any) -> Any:
    """One record or a list of records to a feature matrix; errors locate the field
    as ["body", "sepal_length"] for one record and ["body", 3, "sepal_length"] in a list."""
    if isinstance(payload, dict):
        try:
            return mappings_to_matrix([payload])
        except InputError as error:
            raise InputError(error.location[1:], error.message) from None
    if not isinstance(payload, list):
        raise InputError([], "expected one record (an object) or a list of records")
    if not payload:
        raise InputError([], "no records to predict")
    return mappings_to_matrix(payload)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    summary="Predict one record or a list of records",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "One record or a list of records.",
            "content": {"application/json": {"schema": {"oneOf": [ref("Record"), ref("Records")]}}},
        }
    },
)
async def predict(request: Request) -> Response:
    service = service_of(request)
    matrix = records_matrix(parse_json(await request.body()))
    result = await service.predict(matrix)
    return FastJSONResponse(prediction_body(result, service))


@router.get(
    "/metadata",
    response_model=MetadataResponse,
    summary="The model's metadata, its load state and the server settings",
)
async def metadata(request: Request) -> Response:
    holder = service_of(request).holder
    return FastJSONResponse(
        {
            "status": holder.status,
            "reason": holder.error,
            "model": holder.metadata or None,
            "model_load_seconds": holder.load_seconds,
            "runtime": None
            if holder.runtime is None
            else {"name": holder.runtime.name, "reason": holder.runtime.reason},
            "settings": request.app.state.settings.public(),
        }
    )
