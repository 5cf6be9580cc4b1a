"""Probes. No auth, no model work: they must stay fast while predictions load the CPU."""

from fastapi import APIRouter, Response

from ..dependencies import Service
from ..responses import FastJSONResponse

router = APIRouter(tags=["health"])


def _readiness(service: Service) -> Response:
    holder = service.holder
    if holder.ready:
        return FastJSONResponse({"status": "ready", "model_version": service.model_version})
    reason = holder.error or f"loading the model from {holder.model_dir}"
    return FastJSONResponse({"status": holder.status, "reason": reason}, status_code=503)


@router.get("/livez", summary="Liveness: the process answers")
async def livez() -> Response:
    return FastJSONResponse({"status": "alive"})


@router.get("/readyz", summary="Readiness: 200 once a model is loaded, else 503 with the reason")
async def readyz(service: Service) -> Response:
    return _readiness(service)


@router.get("/ping", summary="SageMaker health check (same as /readyz)")
async def ping(service: Service) -> Response:
    return _readiness(service)


@router.get("/v2/health/live", summary="Open Inference Protocol: server live")
async def v2_live() -> Response:
    return FastJSONResponse({"live": True})


@router.get("/v2/health/ready", summary="Open Inference Protocol: server ready")
async def v2_ready(service: Service) -> Response:
    ready = service.holder.ready
    return FastJSONResponse({"ready": ready}, status_code=200 if ready else 503)
