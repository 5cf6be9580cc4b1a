"""Open Inference Protocol (KServe V2) over REST.

Inputs are either one tensor per feature, named after it (shape [N] or [N, 1]), or a single
tensor of shape [N, F] with the features in schema order. Outputs are `predict` (BYTES, the
class labels) and, for classifiers, `predict_proba` (FP64, [N, classes]). Errors use the
protocol's shape, `{"error": "..."}`, with 400 for bad requests and 404 for unknown models.
"""

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from ...config import PROJECT_NAME, PROJECT_VERSION
from ...features import FEATURE_NAMES, FEATURES, InputError
from ..errors import V2_PREFIX, error_body
from ..responses import FastJSONResponse
from ..routing import LeanRoute, service_of
from ..service import PredictionService

router = APIRouter(tags=["open inference protocol"], route_class=LeanRoute)

NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}
FEATURE_DATATYPE = {"float": "FP64", "int": "INT64"}


def error(status: int, message: str) -> Response:
    return FastJSONResponse(error_body(V2_PREFIX, message), status_code=status)


def unknown_model_message(name: str, version: str | None, service: PredictionService) -> str | None:
    """Why `name` (and `version`, when given) is not this server's model; None when it is."""
    if name != PROJECT_NAME:
        return f"unknown model {name!r}; this server has {PROJECT_NAME!r}"
    if version is not None and service.holder.ready and version != service.model_version:
        return f"unknown version {version!r} of {name!r}; loaded: {service.model_version!r}"
    return None


def unknown_model(name: str, version: str | None, service: PredictionService) -> Response | None:
    message = unknown_model_message(name, version, service)
    return None if message is None else error(404, message)


def model_metadata(service: PredictionService) -> dict[str, Any]:
    classes = service.classes
    outputs = [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
    if classes:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": PROJECT_NAME,
        "versions": [service.model_version] if service.holder.ready else [],
        "platform": "scikit-learn",
        "inputs": [
            {"name": f.name, "datatype": FEATURE_DATATYPE[f.type], "shape": [-1, 1]}
            for f in FEATURES
        ],
        "outputs": outputs,
    }


def tensor_array(tensor: Any, index: int) -> np.ndarray:
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise InputError([where], "expected a tensor object")
    name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if not isinstance(name, str):
        raise InputError([where], "tensor needs a 'name'")
    if datatype not in NUMERIC:
        raise InputError(
            [name], f"datatype {datatype!r} is not numeric; use one of FP64, FP32, INT64, ..."
        )
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InputError([name], "shape must be a list of non-negative integers")
    if data is None:
        raise InputError([name], "tensor has no 'data' (binary tensor data is not supported)")
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError([name], "data must be numbers") from None
    if array.size != int(np.prod(shape)):
        raise InputError(
            [name], f"data has {array.size} values but shape {shape} needs {int(np.prod(shape))}"
        )
    if not np.isfinite(array).all():
        raise InputError([name], "data must be finite numbers (no NaN or infinity)")
    return array.reshape(shape)


def request_matrix(inputs: Any) -> np.ndarray:
    if not isinstance(inputs, list) or not inputs:
        raise InputError(["inputs"], "expected a non-empty list of input tensors")
    arrays = [tensor_array(t, i) for i, t in enumerate(inputs)]
    names = [t["name"] for t in inputs]
    if len(arrays) == 1 and names[0] not in FEATURE_NAMES:
        matrix = arrays[0]
        if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
            raise InputError(
                [names[0]],
                f"a single input must have shape [N, {len(FEATURES)}] ({', '.join(FEATURE_NAMES)})",
            )
        return matrix
    missing = [n for n in FEATURE_NAMES if n not in names]
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise InputError(
            ["inputs"],
            f"unknown input(s) {', '.join(unknown)}; expected {', '.join(FEATURE_NAMES)}",
        )
    if missing:
        raise InputError(["inputs"], f"missing input(s): {', '.join(missing)}")
    columns = []
    for name in FEATURE_NAMES:
        array = arrays[names.index(name)]
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InputError([name], "a feature input must have shape [N] or [N, 1]")
        columns.append(array)
    if len({len(c) for c in columns}) != 1:
        raise InputError(["inputs"], "all inputs must have the same number of rows")
    return np.column_stack(columns)


async def infer(
    request: Request, service: PredictionService, name: str, version: str | None
) -> Response:
    if (problem := unknown_model(name, version, service)) is not None:
        return problem
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as err:
        return error(400, f"body is not valid JSON: {err}")
    if not isinstance(body, dict):
        return error(400, "expected a JSON object with 'inputs'")
    requested = body.get("outputs")
    available = ["predict", "predict_proba"]
    if requested is not None and not (
        isinstance(requested, list) and all(isinstance(o, dict) for o in requested)
    ):
        return error(400, '\'outputs\' must be a list of objects like {"name": "predict"}')
    wanted = [o.get("name") for o in requested] if requested else available
    if bad := [o for o in wanted if o not in available]:
        return error(400, f"unknown output(s) {bad}; available: {', '.join(available)}")
    try:
        matrix = request_matrix(body.get("inputs"))
        result = await service.predict(matrix)
    except InputError as err:  # the protocol says 400 where the other routes say 422
        return error(400, str(err))
    outputs = []
    if "predict" in wanted:
        labels = result.labels.tolist()
        outputs.append(
            {"name": "predict", "datatype": "BYTES", "shape": [len(labels)], "data": labels}
        )
    if "predict_proba" in wanted and result.probabilities is not None:
        proba = result.probabilities
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": list(proba.shape),
                "data": proba.ravel(),
            }
        )
    answer: dict[str, Any] = {
        "model_name": PROJECT_NAME,
        "model_version": service.model_version,
        "outputs": outputs,
    }
    if "id" in body:
        answer["id"] = body["id"]
    return FastJSONResponse(answer)


def _target(request: Request) -> tuple[str, str | None]:
    params = request.path_params
    return params["name"], params.get("version")


@router.get("/v2", summary="Server metadata")
async def server_metadata(request: Request) -> Response:
    return FastJSONResponse({"name": PROJECT_NAME, "version": PROJECT_VERSION, "extensions": []})


@router.get("/v2/models/{name}", summary="Model metadata")
@router.get("/v2/models/{name}/versions/{version}", summary="Model metadata (one version)")
async def metadata(request: Request) -> Response:
    service = service_of(request)
    return unknown_model(*_target(request), service) or FastJSONResponse(model_metadata(service))


@router.get("/v2/models/{name}/ready", summary="Model ready (200) or not (503)")
@router.get("/v2/models/{name}/versions/{version}/ready", summary="Model ready (one version)")
async def model_ready(request: Request) -> Response:
    service = service_of(request)
    name, version = _target(request)
    if (problem := unknown_model(name, version, service)) is not None:
        return problem
    ready = service.holder.ready
    return FastJSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)


@router.post("/v2/models/{name}/infer", summary="Inference")
@router.post("/v2/models/{name}/versions/{version}/infer", summary="Inference (one version)")
async def infer_route(request: Request) -> Response:
    return await infer(request, service_of(request), *_target(request))
