"""The gRPC server: inference.GRPCInferenceService and grpc.health.v1.Health on GRPC_PORT,
in the HTTP server's event loop, over the same PredictionService.

The app's lifespan starts it once the PredictionService runs and stops it before the
service stops; `drain()` starts the graceful stop as soon as SIGTERM arrives, so HTTP and
gRPC drain together within GRACEFUL_TIMEOUT.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ...core.settings import Settings
from ..auth import authorized
from ..prediction_service import PredictionService
from . import inference_pb2_grpc
from .servicer import InferenceServicer

log = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"
# Answered without a token, as HTTP's probes are: health, liveness and readiness.
PUBLIC_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        f"/{SERVICE_NAME}/ServerLive",
        f"/{SERVICE_NAME}/ServerReady",
        f"/{SERVICE_NAME}/ModelReady",
    }
)


# grpc ships no type hints, so mypy sees its base class as Any.
class TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """UNAUTHENTICATED unless the `authorization` metadata carries the bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        if details.method in PUBLIC_METHODS:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        if authorized(metadata.get("authorization"), self.token):
            return await continuation(details)
        return grpc.unary_unary_rpc_method_handler(_unauthenticated)


class Malformed:
    """What a request that is not a message of its method's type decodes to."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


# grpc ships no type hints, so mypy sees its base class as Any.
class MalformedRequests(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """INVALID_ARGUMENT, not grpc's UNKNOWN, for a unary call whose bytes are not a message
    of its method's request type: the decoding error reaches the method as a Malformed, which
    it refuses."""

    def __init__(self) -> None:
        self._handlers: dict[str, Any] = {}

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = self._handlers.get(details.method)
        if handler is None:
            handler = tolerant(await continuation(details))
            if handler is not None:  # a method of ours: a bounded set of names
                self._handlers[details.method] = handler
        return handler


def tolerant(handler: Any) -> Any:
    """`handler` with a decoder that returns Malformed instead of raising, and a method that
    refuses it; streaming handlers as they are."""
    if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
        return handler
    decode, method = handler.request_deserializer, handler.unary_unary

    def read(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as error:  # protobuf's DecodeError, and whatever else decoding raises
            return Malformed(f"{type(error).__name__}: {error}")

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a message of this method's type ({request.reason})",
            )
        return await method(request, context)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=read, response_serializer=handler.response_serializer
    )


async def _unauthenticated(_request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or wrong bearer token: send the metadata 'authorization: Bearer <API_TOKEN>'",
    )


class GrpcServer:
    def __init__(self, settings: Settings, service: PredictionService) -> None:
        self.settings, self.service = settings, service
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self._server: Any = None
        self._stopping: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, loading: "asyncio.Future[Any]") -> None:
        """Listen on GRPC_PORT, NOT_SERVING until `loading` (the model load) succeeds."""
        limit = self.settings.grpc_max_message_bytes
        token = self.settings.token()
        self._server = grpc.aio.server(
            interceptors=[*([TokenCheck(token)] if token else []), MalformedRequests()],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self.service), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.grpc_port}"
        self.port = self._server.add_insecure_port(address)
        await self._server.start()
        self._loop = asyncio.get_running_loop()
        log.info("grpc listening", extra={"address": address, "port": self.port})
        loading.add_done_callback(lambda _: asyncio.ensure_future(self._model_loaded()))

    async def _model_loaded(self) -> None:
        if self.service.holder.ready and self._stopping is None:
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    async def _set_health(self, status: Any) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    def drain(self) -> None:
        """Stop taking calls; those in flight get GRACEFUL_TIMEOUT to finish."""
        if self._server is not None and self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())

    def drain_soon(self) -> None:
        """drain(), from a signal handler or another thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.drain)

    async def _stop(self) -> None:
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace=self.settings.graceful_timeout)

    async def stop(self) -> None:
        self.drain()
        if self._stopping is not None:
            await self._stopping
