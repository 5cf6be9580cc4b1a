"""Prometheus metrics in the text exposition format. Public, like the probes."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .lean_route import LeanRoute

router = APIRouter(tags=["metrics"], route_class=LeanRoute)


# The response class only documents the media type: LeanRoute returns the endpoint's response.
@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
