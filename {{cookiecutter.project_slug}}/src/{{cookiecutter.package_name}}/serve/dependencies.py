"""What routes ask FastAPI for: the prediction service of the running app."""

from typing import Annotated

from fastapi import Depends, Request

from .service import PredictionService


def get_service(request: Request) -> PredictionService:
    service: PredictionService = request.app.state.service
    return service


Service = Annotated[PredictionService, Depends(get_service)]
