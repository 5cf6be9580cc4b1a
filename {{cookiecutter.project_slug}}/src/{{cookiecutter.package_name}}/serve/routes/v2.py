"""Open Inference Protocol (KServe V2) over REST, with the binary tensor data extension.

Inputs and outputs are decoded and encoded by the V2 codec (serve/v2_codec.py), which gRPC
shares; a request that names `outputs` gets those only. Errors use the protocol's shape,
`{"error": "..."}`, with 400 for bad requests and 404 for unknown models.

Binary tensor data: with an `Inference-Header-Content-Length: N` header, the first N bytes of
the body are the JSON request and the rest holds the data of each input that has a
`binary_data_size` parameter, in input order; other inputs carry JSON `data`. An output goes
back as binary data when its `binary_data` parameter is true, or when the request's
`binary_data_output` parameter is true and the output does not say otherwise. The answer is
then the JSON response followed by those outputs' bytes, as `application/octet-stream`, with
the JSON's length in `Inference-Header-Content-Length`. The bytes themselves are read and
written by the V2 codec.
"""

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from ...core.schema import FEATURES, InputError
from ...core.settings import PROJECT_NAME, PROJECT_VERSION
from ..errors import V2_PREFIX, error_body
from ..prediction_service import PredictionService
from ..responses import FastJSONResponse
from ..schemas import (
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerMetadataResponse,
    V2Error,
    ref,
)
from ..v2_codec import (
    FEATURE_DATATYPE,
    OUTPUTS,
    PREDICT_DATATYPE,
    encode,
    model_metadata,
    request_matrix,
    unknown_model_message,
)
from .lean_route import Endpoint, LeanRoute, service_of

router = APIRouter(tags=["open inference protocol"], route_class=LeanRoute)

HEADER_LENGTH = "Inference-Header-Content-Length"


def error(status: int, message: str) -> Response:
    return FastJSONResponse(error_body(V2_PREFIX, message), status_code=status)


def unknown_model(name: str, version: str | None, service: PredictionService) -> Response | None:
    message = unknown_model_message(name, version, service)
    return None if message is None else error(404, message)


def split_body(body: bytes, header_length: str | None) -> tuple[memoryview, memoryview]:
    """The JSON request and the binary tensor data after it (none without the header)."""
    view = memoryview(body)
    if header_length is None:
        return view, view[len(view) :]
    if not re.fullmatch(r"[0-9]{1,18}", header_length) or int(header_length) > len(body):
        raise InputError(
            [HEADER_LENGTH],
            f"must be the length in bytes of the JSON request at the start of the body, "
            f"from 0 to {len(body)}; got {header_length!r}",
        )
    return view[: int(header_length)], view[int(header_length) :]


def tensor_name(tensor: Any, index: int) -> str:
    name = tensor.get("name") if isinstance(tensor, dict) else None
    return name if isinstance(name, str) else f"inputs[{index}]"


def binary_data_size(tensor: Any, index: int) -> int | None:
    parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise InputError([tensor_name(tensor, index)], "'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise InputError(
            [tensor_name(tensor, index)],
            f"binary_data_size must be a whole number of bytes, got {size!r}",
        )
    return size


def binary_parts(inputs: Any, data: memoryview) -> list[memoryview | None]:
    """Each input's share of the binary data, in input order; None for an input whose data
    is in the JSON. The shares must use up the binary data exactly."""
    parts: list[memoryview | None] = []
    sizes: list[str] = []
    offset = 0
    for index, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        size = binary_data_size(tensor, index)
        if size is not None:
            sizes.append(f"{tensor_name(tensor, index)} {size}")
        if size is not None and offset + size > len(data):
            raise InputError(
                [tensor_name(tensor, index)],
                f"binary_data_size is {size} bytes but only {len(data) - offset} are left in "
                f"the body after the JSON request (whose length is the {HEADER_LENGTH} header)",
            )
        parts.append(None if size is None else data[offset : offset + size])
        offset += size or 0
    if offset != len(data):
        raise InputError(
            ["inputs"],
            f"{len(data)} bytes of binary data follow the JSON request but the inputs' "
            f"binary_data_size ({', '.join(sizes) or 'none'}) add up to {offset}",
        )
    return parts


def flag(parameters: Any, key: str, where: str, default: bool) -> bool:
    """A boolean parameter of the request or of one output, or `default` if absent."""
    if parameters is None:
        return default
    if not isinstance(parameters, dict):
        raise InputError([where], "'parameters' must be an object")
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InputError([where], f"{key} must be true or false, got {value!r}")
    return value


def requested_outputs(body: dict[str, Any]) -> dict[str, bool]:
    """The outputs to answer, each with whether it goes back as binary data."""
    all_binary = flag(body.get("parameters"), "binary_data_output", "parameters", False)
    requested = body.get("outputs")
    if requested is not None and not (
        isinstance(requested, list) and all(isinstance(o, dict) for o in requested)
    ):
        raise InputError(["outputs"], 'must be a list of objects like {"name": "predict"}')
    if not requested:
        return dict.fromkeys(OUTPUTS, all_binary)
    if bad := [o.get("name") for o in requested if o.get("name") not in OUTPUTS]:
        raise InputError(["outputs"], f"unknown output(s) {bad}; available: {', '.join(OUTPUTS)}")
    return {
        o["name"]: flag(o.get("parameters"), "binary_data", f"outputs.{o['name']}", all_binary)
        for o in requested
    }


def response(answer: dict[str, Any], binary: list[bytes]) -> Response:
    """The answer as JSON, followed by the binary outputs' bytes when there are any."""
    if not binary:
        return FastJSONResponse(answer)
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(
        b"".join([header, *binary]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


async def infer(
    request: Request, service: PredictionService, name: str, version: str | None
) -> Response:
    if (problem := unknown_model(name, version, service)) is not None:
        return problem
    try:
        header, data = split_body(await request.body(), request.headers.get(HEADER_LENGTH))
        try:
            body = orjson.loads(header)
        except orjson.JSONDecodeError as err:
            raise InputError([], f"body is not valid JSON: {err}") from None
        if not isinstance(body, dict):
            raise InputError([], "expected a JSON object with 'inputs'")
        wanted = requested_outputs(body)
        inputs = body.get("inputs")
        matrix = request_matrix(inputs, binary_parts(inputs, data))
        result = await service.predict(matrix)
    except InputError as err:  # the protocol says 400 where the other routes say 422
        return error(400, str(err))
    outputs: list[dict[str, Any]] = []
    binary: list[bytes] = []

    def add(output: str, datatype: str, array: np.ndarray) -> None:
        tensor: dict[str, Any] = {"name": output, "datatype": datatype, "shape": list(array.shape)}
        if wanted[output]:
            binary.append(encode(array, datatype))
            tensor["parameters"] = {"binary_data_size": len(binary[-1])}
        else:
            tensor["data"] = array.tolist() if datatype == "BYTES" else array.ravel()
        outputs.append(tensor)

    if "predict" in wanted:
        add("predict", PREDICT_DATATYPE, result.labels)
    if "predict_proba" in wanted and result.probabilities is not None:
        add("predict_proba", "FP64", result.probabilities)
    answer: dict[str, Any] = {
        "model_name": PROJECT_NAME,
        "model_version": service.model_version,
        "outputs": outputs,
    }
    if "id" in body:
        answer["id"] = body["id"]
    return response(answer, binary)


def _target(request: Request) -> tuple[str, str | None]:
    params = request.path_params
    return params["name"], params.get("version")


# Path parameters, which FastAPI cannot see in routes that take only the request.
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": f"The model's name: this server has one, {PROJECT_NAME!r}.",
    "schema": {"type": "string", "pattern": "^[^/]+$", "examples": [PROJECT_NAME]},
}
VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "The loaded model's version (see its metadata's `versions`).",
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}
UNKNOWN_MODEL: dict[int | str, dict[str, Any]] = {
    404: {"model": V2Error, "description": "Another model's name, or another version"}
}
INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    **UNKNOWN_MODEL,
    400: {"model": V2Error, "description": "A bad request: the message names the tensor"},
    413: {
        "model": V2Error,
        "description": "Body over MAX_REQUEST_BYTES or rows over MAX_BATCH_ROWS",
    },
    503: {"model": V2Error, "description": "No model loaded"},
}
# The example request: one tensor per feature, holding the schema's example value.
_example_inputs = [
    {"name": f.name, "shape": [1], "datatype": FEATURE_DATATYPE[f.type], "data": [f.example]}
    for f in FEATURES
]
INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": ref("InferenceRequest"),
            "example": {"inputs": _example_inputs},
        }
    },
}


def model_routes(
    method: str, suffix: str, summary: str, body: bool = False, **documented: Any
) -> Callable[[Endpoint], Endpoint]:
    """Route `/v2/models/{name}<suffix>` and `/v2/models/{name}/versions/{version}<suffix>`
    to the endpoint, each declaring its path parameters and, for infer, its body."""

    def register(endpoint: Endpoint) -> Endpoint:
        for prefix, parameters, what in (
            ("/v2/models/{name}", [NAME], summary),
            ("/v2/models/{name}/versions/{version}", [NAME, VERSION], f"{summary} (one version)"),
        ):
            extra: dict[str, Any] = {"parameters": parameters}
            if body:
                extra["requestBody"] = INFER_BODY
            router.add_api_route(
                prefix + suffix,
                endpoint,
                methods=[method],
                summary=what,
                openapi_extra=extra,
                **documented,
            )
        return endpoint

    return register


@router.get("/v2", response_model=ServerMetadataResponse, summary="Server metadata")
async def server_metadata(request: Request) -> Response:
    return FastJSONResponse(
        {"name": PROJECT_NAME, "version": PROJECT_VERSION, "extensions": ["binary_tensor_data"]}
    )


@model_routes(
    "GET", "", "Model metadata", response_model=ModelMetadataResponse, responses=UNKNOWN_MODEL
)
async def metadata(request: Request) -> Response:
    service = service_of(request)
    return unknown_model(*_target(request), service) or FastJSONResponse(model_metadata(service))


@model_routes(
    "GET",
    "/ready",
    "Model readiness: 200, or 503 without a model",
    response_model=ModelReadyResponse,
    responses={
        **UNKNOWN_MODEL,
        503: {"model": ModelReadyResponse, "description": "Not ready: no model loaded"},
    },
)
async def model_ready(request: Request) -> Response:
    service = service_of(request)
    name, version = _target(request)
    if (problem := unknown_model(name, version, service)) is not None:
        return problem
    ready = service.holder.ready
    return FastJSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)


@model_routes(
    "POST",
    "/infer",
    "Inference",
    body=True,
    response_model=InferenceResponse,
    responses=INFER_ERRORS,
)
async def infer_route(request: Request) -> Response:
    return await infer(request, service_of(request), *_target(request))
