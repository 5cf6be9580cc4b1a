"""The reference pipeline as a BentoML service: one worker, JSON records in, labels and
class probabilities out (the same answer as the generated server's /predict)."""

import json
import os
from pathlib import Path

import bentoml
import joblib
import numpy as np

# The model's inputs, as the generated project's model metadata names them.
FEATURES = [
    f["name"] for f in json.loads(Path(os.environ["BENCH_MODEL_METADATA"]).read_text())["features"]
]


@bentoml.service(workers=1)
class IrisClassifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL_FILE"])
        self.classes = [str(c) for c in self.model.classes_]

    @bentoml.api
    def predict(self, rows: list[dict[str, float]]) -> dict:
        matrix = np.array([[row[name] for name in FEATURES] for row in rows], dtype=np.float64)
        probabilities = self.model.predict_proba(matrix)
        labels = np.asarray(self.classes)[probabilities.argmax(axis=1)]
        return {
            "predictions": labels.tolist(),
            "probabilities": [
                dict(zip(self.classes, p, strict=True)) for p in probabilities.tolist()
            ],
        }
