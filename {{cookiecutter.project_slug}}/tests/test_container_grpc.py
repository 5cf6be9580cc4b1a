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
import numpy as np
import pytest

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.core.settings import PROJECT_NAME

from .conftest import CLASSES, as_matrix, needs_one_matrix, varied_rows
from .docker_support import CONTAINER_PORT, free_port, wait_for

# The tests send the rows as one tensor of numbers: not when a feature is a category.
pytestmark = [pytest.mark.container, needs_one_matrix]

GRPC_PORT = "8081/tcp"
# Three rows of the training data, of different classes where it has three.
ROWS = as_matrix(varied_rows(3))
WIDTH = len(FEATURE_NAMES)
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


def infer_input(name: str, array: np.ndarray) -> Any:
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput(name, list(array.shape), "FP64")
    tensor.set_data_from_numpy(array)
    return tensor


def rest_prediction(url: str, rows: np.ndarray) -> dict[str, Any]:
    import httpx

    body = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": list(rows.shape), "data": rows.tolist()}
        ]
    }
    answer = httpx.post(f"{url}/v2/models/{PROJECT_NAME}/infer", json=body, timeout=10).json()
    return {o["name"]: o for o in answer["outputs"]}


def test_health_and_metadata_with_tritonclient(server: tuple[Any, str, str]) -> None:
    client = triton(server[2])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(PROJECT_NAME)
    assert client.get_server_metadata().name == PROJECT_NAME
    metadata = client.get_model_metadata(PROJECT_NAME)
    assert [t.name for t in metadata.inputs] == list(FEATURE_NAMES)
    assert [t.name for t in metadata.outputs] == ["predict", "predict_proba"]


def test_infer_with_one_matrix_tensor(server: tuple[Any, str, str]) -> None:
    result = triton(server[2]).infer(PROJECT_NAME, [infer_input("input-0", ROWS)])
    rest = rest_prediction(server[1], ROWS)
    assert [v.decode() for v in result.as_numpy("predict")] == rest["predict"]["data"]
    np.testing.assert_array_equal(
        result.as_numpy("predict_proba").ravel(), rest["predict_proba"]["data"]
    )


def test_infer_with_one_tensor_per_feature(server: tuple[Any, str, str]) -> None:
    inputs = [infer_input(name, ROWS[:, [i]]) for i, name in enumerate(FEATURE_NAMES)]
    result = triton(server[2]).infer(PROJECT_NAME, inputs)
    rest = rest_prediction(server[1], ROWS)
    assert [v.decode() for v in result.as_numpy("predict")] == rest["predict"]["data"]
    assert result.as_numpy("predict_proba").shape == (len(ROWS), len(CLASSES))


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

    request = service_pb2.ModelInferRequest(model_name=PROJECT_NAME)
    request.inputs.add(name="input-0", datatype="FP64", shape=[2, WIDTH])
    request.raw_input_contents.append(b"\0" * (2 * WIDTH * 8 - 3))
    with grpc.insecure_channel(server[2]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input-0" in raised.value.details()


def test_grpc_needs_the_token_when_one_is_set(docker: Any, image: str) -> None:
    from tritonclient.utils import InferenceServerException

    with running(docker, image, environment={"API_TOKEN": TOKEN}) as (_, _, address):
        client = triton(address)
        assert client.is_server_ready()  # probes need no token
        with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
            client.infer(PROJECT_NAME, [infer_input("input-0", ROWS)])
        headers = {"authorization": f"Bearer {TOKEN}"}
        result = client.infer(PROJECT_NAME, [infer_input("input-0", ROWS)], headers=headers)
        assert len(result.as_numpy("predict")) == len(ROWS)


def test_docker_stop_answers_the_grpc_call_in_flight_then_exits_0(docker: Any, image: str) -> None:
    """The call starts (its headers reach the server), SIGTERM arrives, and only then is its
    message sent: the server drains it within GRACEFUL_TIMEOUT, answers it, and exits 0."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=PROJECT_NAME)
    request.inputs.add(name="input-0", datatype="FP64", shape=list(ROWS.shape))
    request.raw_input_contents.append(ROWS.astype("<f8").tobytes())
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
        assert [o.name for o in response.outputs] == ["predict", "predict_proba"]
        assert container.wait(timeout=30)["StatusCode"] == 0, container.logs().decode()
