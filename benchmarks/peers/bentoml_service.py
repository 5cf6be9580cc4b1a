"""The reference pipeline as two BentoML services, one worker each, access log off; JSON
records in, a label and class probabilities per row out (the same answer as ours' /predict).

IrisClassifier is BentoML's default: one model call per request. IrisClassifierBatching is
its adaptive batching: BentoML joins the `rows` lists of concurrent requests into one call and
splits the answer back, so that API answers with one object per row.
"""

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


class Model:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENCH_MODEL_FILE"])
        self.classes = [str(c) for c in self.model.classes_]

    def labels_and_probabilities(self, rows: list[dict[str, float]]) -> tuple[list, list]:
        matrix = np.array([[row[name] for name in FEATURES] for row in rows], dtype=np.float64)
        probabilities = self.model.predict_proba(matrix)
        labels = np.asarray(self.classes)[probabilities.argmax(axis=1)]
        per_row = [dict(zip(self.classes, p, strict=True)) for p in probabilities.tolist()]
        return labels.tolist(), per_row


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class IrisClassifier(Model):
    @bentoml.api
    def predict(self, rows: list[dict[str, float]]) -> dict:
        labels, probabilities = self.labels_and_probabilities(rows)
        return {"predictions": labels, "probabilities": probabilities}


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class IrisClassifierBatching(Model):
    @bentoml.api(batchable=True, max_batch_size=6400, max_latency_ms=60_000)
    def predict(self, rows: list[dict[str, float]]) -> list[dict]:
        labels, probabilities = self.labels_and_probabilities(rows)
        return [
            {"prediction": label, "probabilities": p}
            for label, p in zip(labels, probabilities, strict=True)
        ]
