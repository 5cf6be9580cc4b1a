"""The Open Inference Protocol over gRPC, against an in-process server: the app with its
gRPC server on a free port, as `serve` runs them, called through the generated stubs.

The generated modules are imported inside the fixtures, not at the top: tritonclient.grpc
(used by the container tests) registers the same protocol's messages under another file
name, and protobuf refuses both in one process. Each run selects one kind (`-m container`
or not), so only one of them is loaded.
"""

import filecmp
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, FEATURES
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import (
    as_matrix,
    make_settings,
    metric,
    needs_one_matrix,
    v2_body,
    varied_rows,
    wait_until_ready,
)
from .docker_support import free_port

ROOT = Path(__file__).parents[1]
GRPC_DIR = ROOT / "src/{{ cookiecutter.package_name }}/serve/grpc"
TOKEN = "s3cret-token"


class Grpc:
    """A channel to the in-process server, its stubs and the generated messages."""

    def __init__(self, port: int, http: TestClient) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from {{ cookiecutter.package_name }}.serve.grpc import (
            inference_pb2,
            inference_pb2_grpc,
        )

        self.pb, self.health_pb, self.http = inference_pb2, health_pb2, http
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = inference_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def health_status(self, service: str = "") -> Any:
        request = self.health_pb.HealthCheckRequest(service=service)
        return self.health.Check(request, timeout=5).status


@pytest.fixture
def serve_grpc() -> Iterator[Any]:
    """Start the app and its gRPC server with these settings; yield a Grpc to it."""
    clients: list[TestClient] = []

    def start(settings: Settings, ready: bool = True) -> Grpc:
        from {{ cookiecutter.package_name }}.serve.grpc.server import GrpcServer

        settings = settings.model_copy(update={"host": "127.0.0.1", "grpc_port": free_port()})
        app = create_app(settings)
        server = GrpcServer(settings, app.state.service)
        app.state.companions.append(server)
        http = TestClient(app)
        http.__enter__()
        clients.append(http)
        if ready:
            wait_until_ready(http)
        assert server.port == settings.grpc_port
        return Grpc(settings.grpc_port, http)

    yield start
    for http in clients:
        http.__exit__(None, None, None)


@pytest.fixture
def rpc(serve_grpc: Any, trained: Settings) -> Grpc:
    grpc: Grpc = serve_grpc(trained)
    return grpc


def matrix_request(pb: Any, rows: list[list[float]], raw: bool, **fields: Any) -> Any:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP64", shape=[len(rows), len(FEATURES)]
    )
    request = pb.ModelInferRequest(inputs=[tensor], **{"model_name": PROJECT_NAME, **fields})
    values = np.asarray(rows, dtype="<f8")
    if raw:
        request.raw_input_contents.append(values.tobytes())
    else:
        tensor = request.inputs[0]
        tensor.contents.fp64_contents.extend(values.ravel().tolist())
    return request


def labels_and_proba(pb: Any, response: Any) -> tuple[list[str], np.ndarray]:
    """The `predict` and `predict_proba` outputs, from raw or typed contents."""
    from {{ cookiecutter.package_name }}.serve import v2_codec

    outputs = {o.name: (i, o) for i, o in enumerate(response.outputs)}
    (i, labels), (j, proba) = outputs["predict"], outputs["predict_proba"]
    if response.raw_output_contents:
        label_array = v2_codec.decode(
            "x", "BYTES", list(labels.shape), response.raw_output_contents[i]
        )
        proba_array = v2_codec.decode(
            "y", "FP64", list(proba.shape), response.raw_output_contents[j]
        )
        return [v.decode() for v in label_array], proba_array
    names = [v.decode() for v in labels.contents.bytes_contents]
    return names, np.asarray(proba.contents.fp64_contents).reshape(list(proba.shape))


def http_prediction(rpc: Grpc, rows: list[list[float]]) -> tuple[list[str], np.ndarray]:
    """What the V2 REST route answers for the same rows."""
    outputs = {
        o["name"]: o
        for o in rpc.http.post(f"/v2/models/{PROJECT_NAME}/infer", json=v2_body(rows)).json()[
            "outputs"
        ]
    }
    proba = np.asarray(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    return outputs["predict"]["data"], proba


def code_of(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


# The model's matrix of some rows: the gRPC tests of inference send it as one tensor, which
# they can when no feature is a category.
ROWS = as_matrix(varied_rows()).tolist()


def test_the_checked_in_code_is_what_make_proto_generates(tmp_path: Path) -> None:
    make = ["make", "-s", "proto", f"PROTO_OUT={tmp_path}", f"PYTHON={sys.executable}"]
    subprocess.run(make, cwd=ROOT, check=True, env={**os.environ, "MAKEFLAGS": ""})
    names = ["inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py"]
    _, mismatch, errors = filecmp.cmpfiles(GRPC_DIR, tmp_path, names, shallow=False)
    assert (mismatch, errors) == ([], []), "stale generated code: run `make proto`"


def test_liveness_readiness_and_server_metadata(rpc: Grpc) -> None:
    pb = rpc.pb
    assert rpc.stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
    assert rpc.stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
    assert rpc.stub.ModelReady(pb.ModelReadyRequest(name=PROJECT_NAME), timeout=5).ready
    metadata = rpc.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=5)
    assert metadata.name == PROJECT_NAME


def test_model_metadata_matches_the_rest_route(rpc: Grpc) -> None:
    metadata = rpc.stub.ModelMetadata(rpc.pb.ModelMetadataRequest(name=PROJECT_NAME), timeout=5)
    rest = rpc.http.get(f"/v2/models/{PROJECT_NAME}").json()
    assert metadata.name == rest["name"] and list(metadata.versions) == rest["versions"]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        (t["name"], t["datatype"], t["shape"]) for t in rest["inputs"]
    ]
    assert [o.name for o in metadata.outputs] == ["predict", "predict_proba"]


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "contents"])
@needs_one_matrix
def test_infer_with_one_matrix_equals_the_rest_route(rpc: Grpc, raw: bool) -> None:
    request = matrix_request(rpc.pb, ROWS, raw, id="req-1")
    response = rpc.stub.ModelInfer(request, timeout=10)
    assert response.id == "req-1" and response.model_name == PROJECT_NAME
    # Raw in, raw out (as Triton answers); typed contents in, typed contents out.
    assert bool(response.raw_output_contents) is raw
    labels, proba = labels_and_proba(rpc.pb, response)
    rest_labels, rest_proba = http_prediction(rpc, ROWS)
    assert labels == rest_labels
    np.testing.assert_array_equal(proba, rest_proba)


@needs_one_matrix
def test_infer_with_one_tensor_per_feature(rpc: Grpc) -> None:
    pb = rpc.pb
    columns = np.asarray(ROWS).T
    request = pb.ModelInferRequest(model_name=PROJECT_NAME)
    for name, column in zip(FEATURE_NAMES, columns, strict=True):
        request.inputs.add(name=name, datatype="FP32", shape=[len(column), 1])
        request.raw_input_contents.append(column.astype("<f4").tobytes())
    labels, proba = labels_and_proba(pb, rpc.stub.ModelInfer(request, timeout=10))
    rest_labels, rest_proba = http_prediction(rpc, columns.astype(np.float32).T.tolist())
    assert labels == rest_labels
    np.testing.assert_allclose(proba, rest_proba)


@needs_one_matrix
def test_outputs_follow_the_request(rpc: Grpc) -> None:
    pb = rpc.pb
    request = matrix_request(pb, ROWS[:2], raw=True)
    request.outputs.add(name="predict")
    request.parameters["binary_data_output"].bool_param = False
    response = rpc.stub.ModelInfer(request, timeout=10)
    assert [o.name for o in response.outputs] == ["predict"]
    assert (
        not response.raw_output_contents and len(response.outputs[0].contents.bytes_contents) == 2
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r.raw_input_contents.__setitem__(0, r.raw_input_contents[0][:-3]), "input-0"),
        (lambda r: r.raw_input_contents.append(b"\0" * 8), "raw_input_contents"),
        (lambda r: setattr(r.inputs[0], "datatype", "BYTES"), "input-0"),
        (lambda r: setattr(r.inputs[0], "datatype", "FLOAT"), "input-0"),
        (lambda r: r.inputs[0].shape.__setitem__(1, len(FEATURES) + 1), "input-0"),
    ],
    ids=["truncated", "more-raw-than-inputs", "bytes-datatype", "unknown-datatype", "wrong-shape"],
)
@needs_one_matrix
def test_bad_input_is_invalid_argument_naming_the_tensor(
    rpc: Grpc, change: Any, named: str
) -> None:
    request = matrix_request(rpc.pb, ROWS[:2], raw=True)
    change(request)
    code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and named in details, details


@needs_one_matrix
def test_unknown_output_is_invalid_argument_and_too_many_rows_resource_exhausted(
    serve_grpc: Any, trained: Settings
) -> None:
    rpc = serve_grpc(trained.model_copy(update={"max_batch_rows": 2}))
    request = matrix_request(rpc.pb, ROWS[:2], raw=True)
    request.outputs.add(name="predict_log_proba")
    code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "predict_log_proba" in details
    request = matrix_request(rpc.pb, ROWS[:3], raw=True)
    code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "MAX_BATCH_ROWS" in details


@needs_one_matrix
def test_nan_in_contents_is_invalid_argument(rpc: Grpc) -> None:
    row = [float("nan"), *[1.0] * (len(FEATURES) - 1)]
    request = matrix_request(rpc.pb, [row], raw=False)
    code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "input-0" in details


@needs_one_matrix
def test_unknown_model_or_version_is_not_found(rpc: Grpc) -> None:
    pb = rpc.pb
    for call in (
        lambda: rpc.stub.ModelInfer(
            matrix_request(pb, ROWS[:1], True, model_name="other"), timeout=5
        ),
        lambda: rpc.stub.ModelMetadata(
            pb.ModelMetadataRequest(name=PROJECT_NAME, version="999"), timeout=5
        ),
        lambda: rpc.stub.ModelReady(pb.ModelReadyRequest(name="other"), timeout=5),
    ):
        assert code_of(call)[0] == grpc.StatusCode.NOT_FOUND


def test_health_serves_once_the_model_is_loaded(rpc: Grpc) -> None:
    assert rpc.health_status() == rpc.health_pb.HealthCheckResponse.SERVING
    status = rpc.health_status("inference.GRPCInferenceService")
    assert status == rpc.health_pb.HealthCheckResponse.SERVING


@needs_one_matrix
def test_without_a_model_health_is_not_serving_and_infer_unavailable(
    serve_grpc: Any, tmp_path: Path
) -> None:
    rpc = serve_grpc(make_settings(tmp_path), ready=False)
    assert rpc.health_status() == rpc.health_pb.HealthCheckResponse.NOT_SERVING
    assert not rpc.stub.ServerReady(rpc.pb.ServerReadyRequest(), timeout=5).ready
    code, details = code_of(
        lambda: rpc.stub.ModelInfer(matrix_request(rpc.pb, ROWS[:1], True), timeout=5)
    )
    assert code == grpc.StatusCode.UNAVAILABLE, details


@needs_one_matrix
def test_bearer_token_from_authorization_metadata(serve_grpc: Any, trained: Settings) -> None:
    rpc = serve_grpc(trained.model_copy(update={"api_token": SecretStr(TOKEN)}))
    pb = rpc.pb
    request = matrix_request(pb, ROWS[:1], raw=True)
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as raised:
            rpc.stub.ModelInfer(request, metadata=metadata, timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    good = (("authorization", f"Bearer {TOKEN}"),)
    assert rpc.stub.ModelInfer(request, metadata=good, timeout=5).outputs
    # Probes need no token.
    assert rpc.stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
    assert rpc.health_status() == rpc.health_pb.HealthCheckResponse.SERVING


@needs_one_matrix
def test_messages_above_the_limit_are_refused(serve_grpc: Any, trained: Settings) -> None:
    rpc = serve_grpc(trained.model_copy(update={"grpc_max_message_bytes": 1024}))
    request = matrix_request(rpc.pb, ROWS * 10, raw=True)
    assert request.ByteSize() > 1024
    code, _ = code_of(lambda: rpc.stub.ModelInfer(request, timeout=5))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


@needs_one_matrix
def test_grpc_predictions_are_counted_with_the_others(rpc: Grpc) -> None:
    rpc.stub.ModelInfer(matrix_request(rpc.pb, ROWS[:3], raw=True), timeout=5)
    assert metric(rpc.http.get("/metrics").text, "predictions_total") >= 3
