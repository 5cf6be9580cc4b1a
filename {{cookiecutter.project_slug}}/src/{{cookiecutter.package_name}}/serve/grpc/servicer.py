"""inference.GRPCInferenceService: the Open Inference Protocol's RPCs over the shared
PredictionService.

Inputs are decoded exactly as on HTTP, by the shared V2 codec (serve/v2_codec.py): one
tensor per feature or one [N, F] tensor. Values come from `raw_input_contents` or from each
tensor's `contents`. Outputs are raw (`raw_output_contents`) when the request's inputs were,
as Triton answers, or when the request's `binary_data_output` parameter says so; typed
`contents` otherwise.
"""

from typing import Any, NoReturn

import grpc
import numpy as np

from ...core.schema import InputError
from ...core.settings import PROJECT_NAME, PROJECT_VERSION
from .. import v2_codec
from ..prediction_service import NotReady, PredictionService, TooManyRows
from ..v2_codec import (
    OUTPUTS,
    PREDICT_DATATYPE,
    model_metadata,
    request_matrix,
    unknown_model_message,
)
from . import inference_pb2 as pb

# Which InferTensorContents field holds each datatype's values (FP16 has none: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str
) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returns only by raising")  # for the type checker


def _tensor(tensor: Any, raw_contents: bytes | None) -> dict[str, Any]:
    """One input as the tensor object the V2 codec validates."""
    name, datatype, shape = tensor.name, tensor.datatype, [int(d) for d in tensor.shape]
    if not name:
        raise InputError(["inputs"], "every input tensor needs a name")
    if raw_contents is not None:
        if tensor.HasField("contents"):
            raise InputError([name], "has both contents and raw_input_contents; send one")
        data: Any = v2_codec.decode(name, datatype, shape, raw_contents)
    else:
        field = CONTENTS_FIELD.get(datatype)
        if field is None:
            raise InputError([name], f"datatype {datatype!r} has no contents field; send it raw")
        values = list(getattr(tensor.contents, field))
        # BYTES as objects: NumPy's own bytes type would drop trailing NUL bytes.
        data = np.array(values, dtype=object if datatype == "BYTES" else None)
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def request_tensors(request: Any) -> list[dict[str, Any]]:
    raw_contents = list(request.raw_input_contents)
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise InputError(
            ["raw_input_contents"],
            f"{len(raw_contents)} raw contents for {len(request.inputs)} inputs; send one per input",
        )
    return [
        _tensor(tensor, raw_contents[i] if raw_contents else None)
        for i, tensor in enumerate(request.inputs)
    ]


def _wants_raw(request: Any) -> bool:
    asked = request.parameters.get("binary_data_output")
    if asked is not None and asked.WhichOneof("parameter_choice") == "bool_param":
        return bool(asked.bool_param)
    return len(request.raw_input_contents) > 0


class InferenceServicer:
    """The service's six RPCs. grpc calls them by name (see inference_pb2_grpc)."""

    def __init__(self, service: PredictionService) -> None:
        self.service = service

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self.service.holder.ready)

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check_model(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=self.service.holder.ready)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerMetadataResponse(name=PROJECT_NAME, version=PROJECT_VERSION, extensions=[])

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check_model(request.name, request.version, context)
        metadata = model_metadata(self.service)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**t) for t in metadata["inputs"]],
            outputs=[tensor(**t) for t in metadata["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._check_model(request.model_name, request.model_version, context)
        wanted = [o.name for o in request.outputs] or list(OUTPUTS)
        if bad := [o for o in wanted if o not in OUTPUTS]:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown output(s) {bad}; available: {', '.join(OUTPUTS)}",
            )
        try:
            result = await self.service.predict(request_matrix(request_tensors(request)))
        except InputError as error:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except TooManyRows as error:
            await _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        except NotReady as error:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"model not ready: {error}")
        arrays: list[tuple[str, str, np.ndarray]] = []
        if "predict" in wanted:
            arrays.append(("predict", PREDICT_DATATYPE, result.labels))
        if "predict_proba" in wanted and result.probabilities is not None:
            arrays.append(("predict_proba", "FP64", result.probabilities))
        response = pb.ModelInferResponse(
            model_name=PROJECT_NAME, model_version=self.service.model_version, id=request.id
        )
        as_raw = _wants_raw(request)
        for name, datatype, array in arrays:
            output = response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
            if as_raw:
                response.raw_output_contents.append(v2_codec.encode(array, datatype))
            elif datatype == "BYTES":
                output.contents.bytes_contents.extend(str(v).encode() for v in array.ravel())
            else:
                output.contents.fp64_contents.extend(array.ravel().tolist())
        return response

    async def _check_model(
        self, name: str, version: str, context: grpc.aio.ServicerContext
    ) -> None:
        message = unknown_model_message(name, version or None, self.service)
        if message is not None:
            await _abort(context, grpc.StatusCode.NOT_FOUND, message)
