"""The Open Inference Protocol over gRPC, against an in-process server: the app with its
gRPC server on a free port, as `serve` runs them, called through the generated stubs.

The generated modules are imported inside the fixtures, not at the top: tritonclient.grpc
(used by the container tests) registers the same protocol's messages under another file
name, and protobuf refuses both in one process. Each run selects one kind (`-m container`
or not), so only one of them is loaded.
"""

import filecmp
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, FEATURES, Feature
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME, Settings
from {{ cookiecutter.package_name }}.serve.app import create_app

from .conftest import (
    CLASSES,
    MATRIX_REFUSAL,
    NUMERIC,
    ONE_MATRIX,
    PREDICT_DATATYPE,
    V2_OUTPUTS,
    Tensor,
    as_float32,
    as_matrix,
    feature_tensors,
    grpc_request,
    make_settings,
    metric,
    v2_tensors,
    v2_values,
    varied_rows,
    wait_until_ready,
    with_unfit,
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


def infer_request(pb: Any, records: list[dict[str, Any]], raw: bool = True, **fields: Any) -> Any:
    """A ModelInferRequest of the records, one tensor per feature (conftest.feature_tensors),
    in `raw_input_contents` or in each tensor's typed contents."""
    return grpc_request(pb.ModelInferRequest, feature_tensors(records), raw, **fields)


def answers(response: Any) -> dict[str, tuple[str, list[int], list[Any]]]:
    """Each output's datatype, shape and elements (flat: labels as text, numbers as floats),
    from raw or typed contents."""
    found = {}
    for i, output in enumerate(response.outputs):
        shape = list(output.shape)
        if response.raw_output_contents:
            as_json = {"datatype": output.datatype, "shape": shape}
            values = v2_values(as_json, response.raw_output_contents[i])
        elif output.datatype == "BYTES":
            values = [v.decode() for v in output.contents.bytes_contents]
        else:
            values = list(output.contents.fp64_contents)
        found[output.name] = (output.datatype, shape, values)
    return found


def http_answers(rpc: Grpc, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the V2 REST route answers for the same records, as `answers` gives it."""
    body = {"inputs": v2_tensors(records)}
    response = rpc.http.post(f"/v2/models/{PROJECT_NAME}/infer", json=body)
    assert response.status_code == 200, response.text
    return {
        o["name"]: (o["datatype"], o["shape"], v2_values(o)) for o in response.json()["outputs"]
    }


def matrix_request(pb: Any, records: list[dict[str, Any]], raw: bool) -> Any:
    """A ModelInferRequest of the records as one [N, features] FP64 tensor: the model's
    matrix, which a model with a category feature refuses."""
    matrix = Tensor("input-0", "FP64", as_matrix(records))
    return grpc_request(pb.ModelInferRequest, [matrix], raw)


def code_of(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


# Rows of the training data, of every class, some with missing values if it has any.
ROWS = varied_rows()


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
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [
        (t["name"], t["datatype"], t["shape"]) for t in rest["outputs"]
    ]
    assert [o.name for o in metadata.outputs] == V2_OUTPUTS
    assert metadata.outputs[0].datatype == PREDICT_DATATYPE


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "contents"])
def test_infer_equals_the_rest_route(rpc: Grpc, raw: bool) -> None:
    """One tensor per feature (numbers in FP64, booleans in BOOL, categories in BYTES): the
    answer of the REST route, a classifier's labels and probabilities, a regressor's
    values."""
    request = infer_request(rpc.pb, ROWS, raw, id="req-1")
    response = rpc.stub.ModelInfer(request, timeout=10)
    assert response.id == "req-1" and response.model_name == PROJECT_NAME
    # Raw in, raw out (as Triton answers); typed contents in, typed contents out.
    assert bool(response.raw_output_contents) is raw
    found = answers(response)
    assert list(found) == V2_OUTPUTS
    assert found["predict"][:2] == (PREDICT_DATATYPE, [len(ROWS)])
    if CLASSES:
        assert found["predict_proba"][:2] == ("FP64", [len(ROWS), len(CLASSES)])
    assert found == http_answers(rpc, ROWS)


def test_infer_with_fp32_columns_of_shape_n_1(rpc: Grpc) -> None:
    """Numbers in FP32, each tensor of shape [N, 1]: the answer for the values float32
    holds."""
    tensors = [t._replace(array=t.array.reshape(-1, 1)) for t in feature_tensors(ROWS, "FP32")]
    response = rpc.stub.ModelInfer(grpc_request(rpc.pb.ModelInferRequest, tensors), timeout=10)
    assert answers(response) == http_answers(rpc, as_float32(ROWS))


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "contents"])
def test_infer_with_one_matrix(rpc: Grpc, raw: bool) -> None:
    """One [N, features] FP64 tensor of the model's matrix: the REST route's answer when no
    feature is a category; with one, INVALID_ARGUMENT naming the tensor, which says to send
    one tensor per feature."""
    request = matrix_request(rpc.pb, ROWS, raw)
    if ONE_MATRIX:
        response = rpc.stub.ModelInfer(request, timeout=10)
        assert answers(response) == http_answers(rpc, ROWS)
    else:
        code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith("input-0: ") and MATRIX_REFUSAL in details, details


def test_outputs_follow_the_request(rpc: Grpc) -> None:
    request = infer_request(rpc.pb, ROWS[:2])
    request.outputs.add(name="predict")
    request.parameters["binary_data_output"].bool_param = False
    response = rpc.stub.ModelInfer(request, timeout=10)
    assert [o.name for o in response.outputs] == ["predict"]
    assert not response.raw_output_contents
    assert answers(response)["predict"] == http_answers(rpc, ROWS[:2])["predict"]


def truncate(request: Any) -> None:
    request.raw_input_contents[0] = request.raw_input_contents[0][:-3]


def retype(request: Any) -> None:
    """NUMERIC's tensor, of FP64 bytes, said to be BYTES: lengths and text that do not fit."""
    request.inputs[FEATURE_NAMES.index(NUMERIC.name)].datatype = "BYTES"


def empty_huge_shape(request: Any) -> None:
    """No elements, in a shape NumPy cannot hold: [0, 2**62]."""
    request.inputs[0].shape[:] = [0, 2**62]
    request.raw_input_contents[0] = b""


def given_twice(request: Any) -> None:
    request.inputs.append(request.inputs[0])
    request.raw_input_contents.append(request.raw_input_contents[0])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (truncate, FEATURE_NAMES[0]),
        (lambda r: r.raw_input_contents.append(b"\0" * 8), "raw_input_contents"),
        (retype, NUMERIC.name),
        (lambda r: setattr(r.inputs[0], "datatype", "FLOAT"), FEATURE_NAMES[0]),
        (lambda r: r.inputs[0].shape.append(2), FEATURE_NAMES[0]),
        (empty_huge_shape, FEATURE_NAMES[0]),
        (given_twice, FEATURE_NAMES[0]),
    ],
    ids=[
        "truncated",
        "more-raw-than-inputs",
        "bytes-datatype",
        "unknown-datatype",
        "wrong-shape",
        "empty-huge-shape",
        "given-twice",
    ],
)
def test_bad_input_is_invalid_argument_naming_the_tensor(
    rpc: Grpc, change: Any, named: str
) -> None:
    request = infer_request(rpc.pb, ROWS[:2])
    change(request)
    code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith(f"{named}: "), details


@pytest.mark.parametrize("body", [b"\x0a\xff\xff\xff\x0f", b"\xff"], ids=["cut-short", "no-field"])
def test_bytes_that_are_no_message_are_invalid_argument(rpc: Grpc, body: bytes) -> None:
    infer = rpc.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    code, details = code_of(lambda: infer(body, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert details.startswith("the request is not a message of this method's type"), details


def test_unknown_output_is_invalid_argument_and_too_many_rows_resource_exhausted(
    serve_grpc: Any, trained: Settings
) -> None:
    """An output the model does not have (a regressor's `predict_proba` among them) is
    INVALID_ARGUMENT naming it."""
    rpc = serve_grpc(trained.model_copy(update={"max_batch_rows": 2}))
    for unknown in {"predict_log_proba", "predict_proba"} - set(V2_OUTPUTS):
        request = infer_request(rpc.pb, ROWS[:2])
        request.outputs.add(name=unknown)
        code, details = code_of(functools.partial(rpc.stub.ModelInfer, request, timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and unknown in details, details
    request = infer_request(rpc.pb, ROWS[:3])
    code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "MAX_BATCH_ROWS" in details


@pytest.mark.parametrize("feature", FEATURES, ids=FEATURE_NAMES)
def test_a_value_a_feature_does_not_take_is_invalid_argument(rpc: Grpc, feature: Feature) -> None:
    """In typed contents (NaN, an unknown category, ...): INVALID_ARGUMENT naming the
    tensor and saying what is wrong."""
    tensors, message = with_unfit(feature)
    request = grpc_request(rpc.pb.ModelInferRequest, tensors, raw=False)
    code, details = code_of(lambda: rpc.stub.ModelInfer(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert f"{feature.name}: {message}" in details, details


def test_unknown_model_or_version_is_not_found(rpc: Grpc) -> None:
    pb = rpc.pb
    for call in (
        lambda: rpc.stub.ModelInfer(infer_request(pb, ROWS[:1], model_name="other"), timeout=5),
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


def test_without_a_model_health_is_not_serving_and_infer_unavailable(
    serve_grpc: Any, tmp_path: Path
) -> None:
    rpc = serve_grpc(make_settings(tmp_path), ready=False)
    assert rpc.health_status() == rpc.health_pb.HealthCheckResponse.NOT_SERVING
    assert not rpc.stub.ServerReady(rpc.pb.ServerReadyRequest(), timeout=5).ready
    code, details = code_of(lambda: rpc.stub.ModelInfer(infer_request(rpc.pb, ROWS[:1]), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE, details


def test_bearer_token_from_authorization_metadata(serve_grpc: Any, trained: Settings) -> None:
    rpc = serve_grpc(trained.model_copy(update={"api_token": SecretStr(TOKEN)}))
    pb = rpc.pb
    request = infer_request(pb, ROWS[:1])
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as raised:
            rpc.stub.ModelInfer(request, metadata=metadata, timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    good = (("authorization", f"Bearer {TOKEN}"),)
    assert rpc.stub.ModelInfer(request, metadata=good, timeout=5).outputs
    # Probes need no token.
    assert rpc.stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready
    assert rpc.health_status() == rpc.health_pb.HealthCheckResponse.SERVING


def test_messages_above_the_limit_are_refused(serve_grpc: Any, trained: Settings) -> None:
    rpc = serve_grpc(trained.model_copy(update={"grpc_max_message_bytes": 1024}))
    request = infer_request(rpc.pb, ROWS * 10)
    assert request.ByteSize() > 1024
    code, _ = code_of(lambda: rpc.stub.ModelInfer(request, timeout=5))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_predictions_are_counted_with_the_others(rpc: Grpc) -> None:
    rpc.stub.ModelInfer(infer_request(rpc.pb, ROWS[:3]), timeout=5)
    assert metric(rpc.http.get("/metrics").text, "predictions_total") >= 3
