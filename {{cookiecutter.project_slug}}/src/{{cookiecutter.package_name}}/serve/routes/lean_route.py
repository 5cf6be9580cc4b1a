"""LeanRoute: FastAPI routes that hand the endpoint the Request and nothing else.

FastAPI's dependency injection and parameter parsing cost tens of microseconds per request,
more than a micro-batched prediction of a small model. Every endpoint here therefore takes
`request` only, reads its body itself (decoded by serve/json_codec.py or serve/v2_codec.py)
and finds the service on `request.app.state`. OpenAPI still documents each route: path
parameters and request bodies through `openapi_extra`, answers through `response_model` and
`responses` (the models in serve/schemas.py). Auth is not a route dependency but part of the request middleware, so
no route can forget it.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from ..prediction_service import PredictionService

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class LeanRoute(APIRoute):
    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            return await endpoint(request)

        return handler


def service_of(request: Request) -> PredictionService:
    service: PredictionService = request.app.state.service
    return service
