"""Turning a Prediction into the JSON body shared by /predict and /invocations."""

from typing import Any

from ..service import Prediction, PredictionService


def prediction_body(result: Prediction, service: PredictionService) -> dict[str, Any]:
    body: dict[str, Any] = {
        "predictions": result.labels.tolist(),
        "model_version": service.model_version,
    }
    if result.probabilities is not None:
        classes = service.classes
        body["probabilities"] = [
            dict(zip(classes, row, strict=True)) for row in result.probabilities.tolist()
        ]
    return body
