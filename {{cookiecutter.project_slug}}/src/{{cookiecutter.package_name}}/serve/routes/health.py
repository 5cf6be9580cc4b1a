"""Probes. Public, and no model work: they must stay fast while predictions load the CPU."""

from typing import Any

from fastapi import APIRouter, Request, Response

from ..responses import FastJSONResponse
from ..schemas import (
    Liveness,
    NotReadyYet,
    Readiness,
    ServerLiveResponse,
    ServerReadyResponse,
)
from .lean_route import LeanRoute, service_of

router = APIRouter(tags=["health"], route_class=LeanRoute)

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": NotReadyYet, "description": "No model loaded yet, or loading failed"}
}


def _readiness(request: Request) -> Response:
    service = service_of(request)
    holder = service.holder
    if holder.ready:
        return FastJSONResponse({"status": "ready", "model_version": service.model_version})
    reason = holder.error or f"loading the model from {holder.source}"
    return FastJSONResponse({"status": holder.status, "reason": reason}, status_code=503)


@router.get("/livez", response_model=Liveness, summary="Liveness: the process answers")
async def livez(request: Request) -> Response:
    return FastJSONResponse({"status": "alive"})


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=NOT_READY,
    summary="Readiness: 200 once a model is loaded, else 503 with the reason",
)
async def readyz(request: Request) -> Response:
    return _readiness(request)


@router.get(
    "/ping",
    response_model=Readiness,
    responses=NOT_READY,
    summary="SageMaker health check (same as /readyz)",
)
async def ping(request: Request) -> Response:
    return _readiness(request)


@router.get(
    "/v2/health/live",
    response_model=ServerLiveResponse,
    summary="Open Inference Protocol: server live",
)
async def v2_live(request: Request) -> Response:
    return FastJSONResponse({"live": True})


@router.get(
    "/v2/health/ready",
    response_model=ServerReadyResponse,
    responses={503: {"model": ServerReadyResponse, "description": "No model loaded"}},
    summary="Open Inference Protocol: server ready",
)
async def v2_ready(request: Request) -> Response:
    ready = service_of(request).holder.ready
    return FastJSONResponse({"ready": ready}, status_code=200 if ready else 503)
