"""`POST /invocations`: SageMaker's inference route, which also takes MLflow's JSON forms.

JSON bodies may be one record, a list of records or rows, or one of MLflow's
`dataframe_split`, `dataframe_records`, `instances`, `inputs`. `text/csv` bodies are rows of
values in feature order, with or without a header line. `Accept: text/csv` returns CSV.
"""

import csv
import io
import math
from typing import Any

from fastapi import APIRouter, Request, Response

from ...features import (
    FEATURE_NAMES,
    InputError,
    columns_to_matrix,
    lists_to_matrix,
    mappings_to_matrix,
)
from ..responses import FastJSONResponse
from ..routing import LeanRoute, service_of
from ..schemas import PredictResponse
from ..service import Prediction
from .common import prediction_body
from .predict import ERRORS, parse_json, records_matrix

router = APIRouter(tags=["sagemaker"], route_class=LeanRoute)

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def rows_to_matrix(rows: Any, location: list[str | int]) -> Any:
    if not isinstance(rows, list) or not rows:
        raise InputError(location, "expected a non-empty list of records or rows")
    if isinstance(rows[0], dict):
        return mappings_to_matrix(rows, location)
    return lists_to_matrix(rows, location)


def json_to_matrix(payload: Any) -> Any:
    """Any of the accepted JSON forms to a feature matrix."""
    if isinstance(payload, list):
        return rows_to_matrix(payload, [])
    if not isinstance(payload, dict):
        raise InputError([], "expected a JSON object or a list")
    keys = [key for key in MLFLOW_KEYS if key in payload]
    if not keys:  # one record, exactly as /predict takes it
        return records_matrix(payload)
    if len(keys) > 1:
        raise InputError([], f"give exactly one of {', '.join(MLFLOW_KEYS)}; got {', '.join(keys)}")
    key = keys[0]
    extra = [k for k in payload if k not in (key, "params")]
    if extra:
        raise InputError([extra[0]], f"unexpected field beside {key!r}")
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise InputError([key], "expected an object with 'columns' and 'data'")
        data = value.get("data")
        if not isinstance(data, list) or not data:
            raise InputError([key, "data"], "expected a non-empty list of rows")
        try:
            return columns_to_matrix(value.get("columns"), data)
        except InputError as error:
            raise InputError([key, *error.location], error.message) from None
    if isinstance(value, dict):  # columnar: {"feature": [values, ...], ...}
        columns = list(value)
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InputError([key], "expected lists of equal length for every column")
        rows = [list(row) for row in zip(*value.values(), strict=True)]
        try:
            return columns_to_matrix(columns, rows)
        except InputError as error:
            raise InputError([key, *error.location], error.message) from None
    return rows_to_matrix(value, [key])


def csv_to_matrix(text: str) -> Any:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as error:
        raise InputError(["csv"], f"not valid CSV: {error}") from None
    if rows and [cell.strip() for cell in rows[0]] == list(FEATURE_NAMES):
        rows = rows[1:]
    if not rows:
        raise InputError(["csv"], "no rows to predict")
    parsed: list[list[float]] = []
    for i, row in enumerate(rows, start=1):
        if len(row) != len(FEATURE_NAMES):
            raise InputError(
                ["csv", i],
                f"expected {len(FEATURE_NAMES)} values ({', '.join(FEATURE_NAMES)}), got {len(row)}",
            )
        values = []
        for name, cell in zip(FEATURE_NAMES, row, strict=True):
            try:
                value = float(cell)
            except ValueError:
                raise InputError(["csv", i, name], f"{cell!r} is not a number") from None
            if not math.isfinite(value):
                raise InputError(["csv", i, name], "must be a finite number (no NaN or infinity)")
            values.append(value)
        parsed.append(values)
    return lists_to_matrix(parsed, ["csv"])


def csv_body(result: Prediction, classes: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    has_proba = result.probabilities is not None
    writer.writerow(["prediction", *([f"probability_{c}" for c in classes] if has_proba else [])])
    for i, label in enumerate(result.labels.tolist()):
        proba = result.probabilities[i].tolist() if result.probabilities is not None else []
        writer.writerow([label, *proba])
    return out.getvalue()


@router.post(
    "/invocations",
    response_model=PredictResponse,
    responses=ERRORS,
    summary="SageMaker inference (JSON, MLflow JSON forms, or text/csv)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": ["object", "array"]}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def invocations(request: Request) -> Response:
    service = service_of(request)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    body = await request.body()
    if content_type == "text/csv":
        matrix = csv_to_matrix(body.decode("utf-8", errors="replace"))
    elif content_type in ("application/json", ""):
        matrix = json_to_matrix(parse_json(body))
    else:
        return FastJSONResponse(
            {
                "detail": f"unsupported Content-Type {content_type!r}; use application/json or text/csv"
            },
            status_code=415,
        )
    result = await service.predict(matrix)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(csv_body(result, service.classes), media_type="text/csv")
    return FastJSONResponse(prediction_body(result, service))
