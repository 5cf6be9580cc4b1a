"""Assembly only: create the app, attach state, middleware, error handlers and routers."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from starlette.exceptions import HTTPException

from ..core.schema import InputError
from ..core.settings import PROJECT_NAME, PROJECT_VERSION, Settings, get_settings
from .errors import error_body
from .json_codec import OutputsError
from .logs import AccessLog
from .metrics import Metrics
from .middleware import RequestMiddleware
from .model_holder import ModelHolder
from .openapi import openapi_document
from .payload_log import PayloadLogger, PayloadLogMiddleware
from .prediction_service import NotReady, PredictionService, TooManyRows
from .responses import FastJSONResponse
from .routes import health, metrics, predict, sagemaker, v2

log = logging.getLogger(__name__)


class Companion(Protocol):
    """A server that runs beside the HTTP app in its event loop (the gRPC server): started
    once the PredictionService runs, stopped before it stops."""

    async def start(self, loading: "asyncio.Future[Any]") -> None: ...

    async def stop(self) -> None: ...


# A model from MODEL_URI that could not be had (the store down for a while, the model not
# there yet) is fetched again, FETCH_RETRY_FIRST_S later, then twice as late each time up to
# FETCH_RETRY_MAX_S, until it loads: the pod turns ready by itself. /readyz gives the reason
# meanwhile.
FETCH_RETRY_FIRST_S = 2.0
FETCH_RETRY_MAX_S = 60.0


async def load_model(app: FastAPI) -> None:
    """Load in a thread so the probes answer (not ready) while it runs."""
    holder: ModelHolder = app.state.service.holder
    await asyncio.to_thread(holder.load)
    delay = FETCH_RETRY_FIRST_S
    while not holder.ready and holder.model_uri:
        log.info("model fetch retried", extra={"source": holder.source, "in_seconds": delay})
        await asyncio.sleep(delay)
        delay = min(delay * 2, FETCH_RETRY_MAX_S)
        await asyncio.to_thread(holder.load)
    # Everything loaded so far lives as long as the process: keep it out of the garbage
    # collector's scans, which would otherwise pause requests for tens of milliseconds.
    gc.collect()
    gc.freeze()
    if holder.ready:
        app.state.metrics.load_seconds.set(holder.load_seconds or 0)
        app.state.metrics.model.info(
            {
                "name": str(holder.metadata.get("model_name", PROJECT_NAME)),
                "version": str(holder.metadata.get("model_version", "")),
                "runtime": holder.runtime.name if holder.runtime else "",
                "runtime_reason": (holder.runtime.reason if holder.runtime else None) or "",
            }
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: PredictionService = app.state.service
    await service.start()
    loading = asyncio.create_task(load_model(app))
    companions: list[Companion] = app.state.companions
    for companion in companions:
        await companion.start(loading)
    try:
        yield
    finally:
        for companion in companions:
            await companion.stop()
        loading.cancel()
        await service.stop()
        app.state.access_log.flush()


def input_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, InputError)
    where = "query" if isinstance(error, OutputsError) else "body"
    detail = [{"type": "value_error", "loc": [where, *error.location], "msg": error.message}]
    return FastJSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)


def too_many_rows(request: Request, error: Exception) -> Response:
    return FastJSONResponse(error_body(request.url.path, str(error)), status_code=413)


def not_ready(request: Request, error: Exception) -> Response:
    body = error_body(request.url.path, f"model not ready: {error}")
    return FastJSONResponse(body, status_code=503)


def http_error(request: Request, error: Exception) -> Response:
    """404, 405 and a body found too large while it streams in, in the route's error shape."""
    assert isinstance(error, HTTPException)
    return FastJSONResponse(
        error_body(request.url.path, error.detail),
        status_code=error.status_code,
        headers=error.headers,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title=PROJECT_NAME,
        version=PROJECT_VERSION,
        description="{{ cookiecutter.description }}",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.companions = []
    app.state.metrics = Metrics()
    app.state.access_log = AccessLog(settings.log_level)
    app.state.service = PredictionService(
        settings,
        ModelHolder(
            settings.model_dir,
            settings.model_runtime,
            model_uri=settings.model_uri,
            cache_dir=settings.model_cache_dir,
        ),
        app.state.metrics,
    )

    app.add_middleware(
        RequestMiddleware,
        metrics=app.state.metrics,
        access_log=app.state.access_log,
        max_request_bytes=settings.max_request_bytes,
        token=settings.token(),
    )
    if settings.payload_log_url:  # outside the request middleware: it sees the request id
        logger = PayloadLogger(
            settings.payload_log_url,
            settings.payload_log_sample,
            settings.pod_namespace or "",
            app.state.metrics,
        )
        app.add_middleware(PayloadLogMiddleware, logger=logger)
        app.state.companions.append(logger)
    app.add_exception_handler(InputError, input_error)
    app.add_exception_handler(TooManyRows, too_many_rows)
    app.add_exception_handler(NotReady, not_ready)
    app.add_exception_handler(HTTPException, http_error)

    # FastAPI documents replacing `app.openapi` as the way to customise the document.
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    # Prediction routes first: routes are matched in order, and these are the hot ones.
    for router in (
        predict.router,
        sagemaker.router,
        v2.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    return app
