"""SageMaker's routes: `POST /invocations` (real-time endpoints and Batch Transform) and
`GET /execution-parameters`. `/invocations` also takes MLflow's JSON forms.

JSON bodies may be one record, a list of records or rows, or one of MLflow's
`dataframe_split`, `dataframe_records`, `instances`, `inputs`. `text/csv` bodies are rows of
values in feature order, with or without a header line. `application/jsonlines` bodies hold
one record (an object or a list of values) per line.

CSV and JSON Lines answers have exactly one line per input record, in order, and no header,
as Batch Transform needs to join them with the input (`JoinSource=Input`). `Accept` picks the
answer's type; without it, CSV and JSON Lines are answered in kind, JSON in JSON.
"""

import csv
import io
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from ...core.cpus import available_cpus
from ...core.encoding import BadValue, encode_text
from ...core.schema import FEATURE_NAMES, FEATURES, TASK, InputError
from ..json_codec import (
    OUTPUTS,
    OUTPUTS_PARAMETER,
    columns_to_matrix,
    lists_to_matrix,
    mappings_to_matrix,
    parse_json,
    prediction_body,
    records_matrix,
    requested_outputs,
)
from ..prediction_service import Prediction, PredictionService
from ..responses import FastJSONResponse
from ..schemas import PREDICTION_ERRORS, ExecutionParameters, PredictResponse, ProblemDetail, ref
from .lean_route import LeanRoute, service_of

router = APIRouter(tags=["sagemaker"], route_class=LeanRoute)

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CSV = "text/csv"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
JSON_LINES_ALIASES = {JSON_LINES, "application/x-jsonlines", "application/jsonl"}


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
    matrix = np.empty((len(rows), len(FEATURES)), dtype=np.float64)
    for i, row in enumerate(rows, start=1):
        if len(row) != len(FEATURES):
            raise InputError(
                ["csv", i],
                f"expected {len(FEATURES)} values ({', '.join(FEATURE_NAMES)}), got {len(row)}",
            )
        for j, (feature, cell) in enumerate(zip(FEATURES, row, strict=True)):
            try:
                matrix[i - 1, j] = encode_text(feature, cell)
            except BadValue as bad:
                raise InputError(["csv", i, feature.name], bad.problem) from None
    return matrix


def json_lines_to_matrix(body: bytes) -> Any:
    records = []
    for i, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as error:
            raise InputError(["jsonl", i], f"line {i} is not valid JSON: {error}") from None
    return rows_to_matrix(records, ["jsonl"])


def _columns(result: Prediction, outputs: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """The rows' labels (or values) and probabilities, each empty when not asked for."""
    rows = len(result.labels)
    labels = result.labels.tolist() if "predictions" in outputs else [None] * rows
    probabilities: list[Any] = [None] * rows
    if "probabilities" in outputs and result.probabilities is not None:
        probabilities = result.probabilities.tolist()
    return labels, probabilities


def csv_body(result: Prediction, outputs: tuple[str, ...] = OUTPUTS) -> str:
    """One line per record: the label, then the probability of each class, as `outputs`
    asks. No header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    labels, probabilities = _columns(result, outputs)
    writer.writerows(
        ([] if label is None else [label]) + (proba or [])
        for label, proba in zip(labels, probabilities, strict=True)
    )
    return out.getvalue()


def json_lines_body(
    result: Prediction, classes: list[str], outputs: tuple[str, ...] = OUTPUTS
) -> bytes:
    """One JSON object per record: `prediction` and, when the model has them, `probabilities`,
    as `outputs` asks."""
    lines = []
    for label, proba in zip(*_columns(result, outputs), strict=True):
        line: dict[str, Any] = {}
        if label is not None:
            line["prediction"] = label
        if proba is not None:
            line["probabilities"] = dict(zip(classes, proba, strict=True))
        lines.append(orjson.dumps(line))
    return b"\n".join(lines) + b"\n"


async def predict_in_slices(service: PredictionService, matrix: np.ndarray) -> Prediction:
    """A multi-record body may hold more rows than MAX_BATCH_ROWS: Batch Transform fills it
    up to MaxPayloadInMB. Its size is already bounded by MAX_REQUEST_BYTES, so it is scored in
    slices of MAX_BATCH_ROWS rows rather than refused."""
    step = service.settings.max_batch_rows
    if len(matrix) <= step:
        return await service.predict(matrix)
    parts = [await service.predict(matrix[i : i + step]) for i in range(0, len(matrix), step)]
    probabilities = None
    if parts[0].probabilities is not None:
        probabilities = np.concatenate([p.probabilities for p in parts])
    return Prediction(np.concatenate([p.labels for p in parts]), probabilities)


def answer_type(request: Request, content_type: str) -> str:
    accept = request.headers.get("accept", "").split(";")[0].strip().lower()
    if accept in JSON_LINES_ALIASES:
        return JSON_LINES
    if accept in (CSV, JSON):
        return accept
    return content_type if content_type in (CSV, JSON_LINES) else JSON


@router.get(
    "/execution-parameters",
    response_model=ExecutionParameters,
    summary="SageMaker Batch Transform: how to send this container batches",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "MaxConcurrentTransforms": 2,
                        "BatchStrategy": "MULTI_RECORD",
                        "MaxPayloadInMB": 6,
                    }
                }
            }
        }
    },
)
async def execution_parameters(request: Request) -> Response:
    settings = service_of(request).settings
    return FastJSONResponse(
        {
            # One request in flight per CPU the container may use: enough to keep parsing and
            # the model thread busy, while micro-batching gathers them into model calls.
            "MaxConcurrentTransforms": available_cpus(),
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, settings.max_request_bytes // (1024 * 1024)),
        }
    )


def _csv_cell(value: Any) -> str:
    """A value as a CSV cell: empty when missing, true or false for a boolean."""
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


_CSV_ROW = ",".join(_csv_cell(f.example) for f in FEATURES)
_JSON_LINE = orjson.dumps({f.name: f.example for f in FEATURES}).decode()
_TEXT = {"type": "string"}
# What each line of a CSV or JSON Lines answer holds, for the API docs.
_LINES = (
    "CSV: the value; JSON Lines: `prediction`"
    if TASK == "regression"
    else "CSV: the label, then each class's probability; JSON Lines: `prediction` and "
    "`probabilities`"
)


@router.post(
    "/invocations",
    response_model=PredictResponse,
    responses={
        **PREDICTION_ERRORS,
        200: {
            "description": "The predictions, as `Accept` asks: JSON, or one line per record "
            f"({_LINES}). Without `Accept`, CSV and JSON Lines bodies are answered in kind, "
            "JSON in JSON.",
            "content": {
                CSV: {"schema": _TEXT},
                JSON_LINES: {"schema": _TEXT},
            },
        },
        415: {
            "model": ProblemDetail,
            "description": "A Content-Type other than JSON, CSV or JSON Lines",
        },
    },
    summary="SageMaker inference (JSON, MLflow JSON forms, text/csv or JSON Lines)",
    openapi_extra={
        "parameters": [OUTPUTS_PARAMETER],
        "requestBody": {
            "required": True,
            "description": "JSON (the default without Content-Type), CSV rows of values in "
            "feature order with or without a header line, or one record (an object or a "
            f"list of values) per line. `{JSON_LINES}` may also be sent as "
            "`application/x-jsonlines` or `application/jsonl`.",
            "content": {
                JSON: {"schema": ref("InvocationsJSON")},
                CSV: {"schema": _TEXT, "example": _CSV_ROW + "\n"},
                JSON_LINES: {"schema": _TEXT, "example": _JSON_LINE + "\n"},
            },
        },
    },
)
async def invocations(request: Request) -> Response:
    service = service_of(request)
    outputs = requested_outputs(request.query_params.get("outputs"))
    content_type = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    body = await request.body()
    if content_type == CSV:
        result = await predict_in_slices(service, csv_to_matrix(body.decode("utf-8", "replace")))
    elif content_type in JSON_LINES_ALIASES:
        content_type = JSON_LINES
        result = await predict_in_slices(service, json_lines_to_matrix(body))
    elif content_type in (JSON, ""):
        result = await service.predict(json_to_matrix(parse_json(body)))
    else:
        return FastJSONResponse(
            {
                "detail": f"unsupported Content-Type {content_type!r}; use {JSON}, {CSV} "
                f"or {JSON_LINES}"
            },
            status_code=415,
        )
    answer = answer_type(request, content_type)
    if answer == CSV:
        return Response(csv_body(result, outputs), media_type=CSV)
    if answer == JSON_LINES:
        return Response(json_lines_body(result, service.classes, outputs), media_type=JSON_LINES)
    return FastJSONResponse(prediction_body(result, service, outputs))
