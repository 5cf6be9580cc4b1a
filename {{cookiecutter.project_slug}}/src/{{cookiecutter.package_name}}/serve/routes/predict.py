"""`POST /predict` and `GET /metadata`: the project's own JSON API."""

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from ...features import InputError, Record, records_to_matrix
from ..auth import require_token
from ..dependencies import Service
from ..responses import FastJSONResponse
from ..schemas import PredictResponse, ProblemDetail
from .common import prediction_body

router = APIRouter(dependencies=[Depends(require_token)], tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ProblemDetail, "description": "Missing or wrong bearer token"},
    413: {
        "model": ProblemDetail,
        "description": "Body over MAX_REQUEST_BYTES or rows over MAX_BATCH_ROWS",
    },
    503: {"model": ProblemDetail, "description": "No model loaded"},
}


RECORDS = TypeAdapter(list[Record])  # type: ignore[valid-type]
REQUEST_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/Record"},
        {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
    ]
}


def parse_records(body: bytes) -> list[Any]:
    """One record or a list of records, validated against the feature schema.

    Parsed here rather than by FastAPI so a list and a single record give the same clean
    error locations (["body", 0, "sepal_length"]), and orjson makes it faster.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InputError([], f"body is not valid JSON: {error}") from None
    single = isinstance(payload, dict)
    try:
        records = RECORDS.validate_python([payload] if single else payload)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False)
        for problem in problems:
            location = list(problem["loc"])
            problem["loc"] = ["body", *(location[1:] if single else location)]
        raise RequestValidationError(problems) from None
    if not records:
        raise InputError([], "no records to predict")
    return records


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    summary="Predict one record or a list of records",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "One record or a list of records.",
            "content": {"application/json": {"schema": REQUEST_SCHEMA}},
        }
    },
)
async def predict(request: Request, service: Service) -> Response:
    records = parse_records(await request.body())
    service.check_rows(len(records))
    result = await service.predict(records_to_matrix(records))
    return FastJSONResponse(prediction_body(result, service))


@router.get("/metadata", summary="The model's metadata, its load state and the server settings")
async def metadata(request: Request, service: Service) -> Response:
    holder = service.holder
    return FastJSONResponse(
        {
            "status": holder.status,
            "reason": holder.error,
            "model": holder.metadata or None,
            "model_load_seconds": holder.load_seconds,
            "settings": request.app.state.settings.public(),
        }
    )
