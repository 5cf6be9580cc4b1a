"""`POST /predict` and `GET /metadata`: the project's own JSON API."""

from fastapi import APIRouter, Request, Response

from ..json_codec import (
    OUTPUTS_PARAMETER,
    parse_json,
    prediction_body,
    records_matrix,
    requested_outputs,
)
from ..responses import FastJSONResponse
from ..schemas import PREDICTION_ERRORS, MetadataResponse, PredictResponse, ref
from .lean_route import LeanRoute, service_of

router = APIRouter(tags=["predict"], route_class=LeanRoute)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=PREDICTION_ERRORS,
    summary="Predict one record or a list of records",
    openapi_extra={
        "parameters": [OUTPUTS_PARAMETER],
        "requestBody": {
            "required": True,
            "description": "One record or a list of records.",
            "content": {"application/json": {"schema": {"oneOf": [ref("Record"), ref("Records")]}}},
        },
    },
)
async def predict(request: Request) -> Response:
    service = service_of(request)
    outputs = requested_outputs(request.query_params.get("outputs"))
    matrix = records_matrix(parse_json(await request.body()))
    result = await service.predict(matrix)
    return FastJSONResponse(prediction_body(result, service, outputs))


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
            "source": holder.source,
            "runtime": None
            if holder.runtime is None
            else {"name": holder.runtime.name, "reason": holder.runtime.reason},
            "settings": request.app.state.settings.public(),
        }
    )
