"""The image's gRPC server (Open Inference Protocol and grpc.health.v1) with the unmodified
`tritonclient.grpc` client and the standard health client.

tritonclient.grpc is imported inside the tests: it registers the protocol's messages under
its own file name, as this project's generated code does under another, and protobuf
refuses both in one process (a `-m container` run never loads the project's).
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME

from .conftest import (
    CLASSES,
    MATRIX_REFUSAL,
    ONE_MATRIX,
    PREDICT_DATATYPE,
    V2_OUTPUTS,
    Tensor,
    as_answers,
    as_matrix,
    feature_tensors,
    grpc_request,
    v2_tensors,
    v2_values,
    varied_rows,
)
from .docker_support import CONTAINER_PORT, free_port, wait_for

pytestmark = pytest.mark.container

GRPC_PORT = "8081/tcp"
# Three rows of the training data, of different classes where it has three.
ROWS = varied_rows(3)
TOKEN = "grpc-test-token"


@contextmanager
def running(docker: Any, image: str, **run: Any) -> Iterator[tuple[Any, str, str]]:
    """The image's server, HTTP and gRPC published on free 127.0.0.1 ports, once ready."""
    http, rpc = free_port(), free_port()
    container = docker.containers.run(
        image,
        detach=True,
        ports={CONTAINER_PORT: ("127.0.0.1", http), GRPC_PORT: ("127.0.0.1", rpc)},
        **run,
    )
    try:
        wait_for(f"http://127.0.0.1:{http}/readyz", timeout=90)
        yield container, f"http://127.0.0.1:{http}", f"127.0.0.1:{rpc}"
    except BaseException:
        print(container.logs().decode(errors="replace"))
        raise
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def server(docker: Any, image: str) -> Iterator[tuple[Any, str, str]]:
    with running(docker, image) as started:
        yield started


def triton(address: str) -> Any:
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(address)


def infer_inputs(tensors: list[Tensor]) -> list[Any]:
    """The tensors as the client's inputs, each set from its NumPy array."""
    import tritonclient.grpc as grpcclient

    inputs = []
    for tensor in tensors:
        infer_input = grpcclient.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
        infer_input.set_data_from_numpy(tensor.array)
        inputs.append(infer_input)
    return inputs


def rest_prediction(url: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The REST route's answer for the records: each output's elements, flat."""
    import httpx

    body = {"inputs": v2_tensors(records)}
    answer = httpx.post(f"{url}/v2/models/{PROJECT_NAME}/infer", json=body, timeout=10).json()
    return {o["name"]: v2_values(o) for o in answer["outputs"]}


def client_answers(result: Any) -> dict[str, Any]:
    """The client's result as rest_prediction gives it."""
    return {name: as_answers(result.as_numpy(name)) for name in V2_OUTPUTS}


def test_health_and_metadata_with_tritonclient(server: tuple[Any, str, str]) -> None:
    client = triton(server[2])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(PROJECT_NAME)
    assert client.get_server_metadata().name == PROJECT_NAME
    metadata = client.get_model_metadata(PROJECT_NAME)
    assert [t.name for t in metadata.inputs] == list(FEATURE_NAMES)
    assert [t.name for t in metadata.outputs] == V2_OUTPUTS
    assert metadata.outputs[0].datatype == PREDICT_DATATYPE


def test_infer_with_one_tensor_per_feature(server: tuple[Any, str, str]) -> None:
    """Numbers in FP64, booleans in BOOL, categories in BYTES: the REST route's answer, a
    classifier's labels and probabilities, a regressor's values."""
    result = triton(server[2]).infer(PROJECT_NAME, infer_inputs(feature_tensors(ROWS)))
    assert client_answers(result) == rest_prediction(server[1], ROWS)
    assert result.as_numpy("predict").shape == (len(ROWS),)
    if CLASSES:
        assert result.as_numpy("predict_proba").shape == (len(ROWS), len(CLASSES))


def test_infer_with_one_matrix_tensor(server: tuple[Any, str, str]) -> None:
    """One [N, features] FP64 tensor of the model's matrix: the REST route's answer when no
    feature is a category; with one, INVALID_ARGUMENT naming the tensor."""
    from tritonclient.utils import InferenceServerException

    inputs = infer_inputs([Tensor("input-0", "FP64", as_matrix(ROWS))])
    if ONE_MATRIX:
        result = triton(server[2]).infer(PROJECT_NAME, inputs)
        assert client_answers(result) == rest_prediction(server[1], ROWS)
    else:
        with pytest.raises(InferenceServerException) as raised:
            triton(server[2]).infer(PROJECT_NAME, inputs)
        assert "INVALID_ARGUMENT" in str(raised.value.status())
        assert "input-0: " in raised.value.message() and MATRIX_REFUSAL in raised.value.message()


def test_standard_grpc_health_check(server: tuple[Any, str, str]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server[2]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_malformed_raw_buffer_is_invalid_argument_naming_the_tensor(
    server: tuple[Any, str, str],
) -> None:
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    request = grpc_request(service_pb2.ModelInferRequest, feature_tensors(ROWS[:2]))
    request.raw_input_contents[0] = request.raw_input_contents[0][:-3]
    with grpc.insecure_channel(server[2]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(f"{FEATURE_NAMES[0]}: ")


def test_grpc_needs_the_token_when_one_is_set(docker: Any, image: str) -> None:
    from tritonclient.utils import InferenceServerException

    with running(docker, image, environment={"API_TOKEN": TOKEN}) as (_, _, address):
        client = triton(address)
        assert client.is_server_ready()  # probes need no token
        inputs = infer_inputs(feature_tensors(ROWS))
        with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
            client.infer(PROJECT_NAME, inputs)
        headers = {"authorization": f"Bearer {TOKEN}"}
        result = client.infer(PROJECT_NAME, inputs, headers=headers)
        assert len(result.as_numpy("predict")) == len(ROWS)


def test_docker_stop_answers_the_grpc_call_in_flight_then_exits_0(docker: Any, image: str) -> None:
    """The call starts (its headers reach the server), SIGTERM arrives, and only then is its
    message sent: the server drains it within GRACEFUL_TIMEOUT, answers it, and exits 0."""
    from tritonclient.grpc import service_pb2

    request = grpc_request(service_pb2.ModelInferRequest, feature_tensors(ROWS))
    started, signalled = threading.Event(), threading.Event()

    def messages() -> Iterator[Any]:
        started.set()
        signalled.wait(10)
        yield request

    with (
        running(docker, image) as (container, _, address),
        grpc.insecure_channel(address) as channel,
    ):
        infer = channel.stream_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelInferResponse.FromString,
        )
        answer = infer.future(messages(), timeout=30)
        assert started.wait(10)
        time.sleep(0.5)
        container.kill(signal="SIGTERM")
        time.sleep(0.5)  # the server is draining while the call's message is still to come
        signalled.set()
        response = answer.result(timeout=30)
        assert [o.name for o in response.outputs] == V2_OUTPUTS
        assert container.wait(timeout=30)["StatusCode"] == 0, container.logs().decode()
