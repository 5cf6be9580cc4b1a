"""The PyTorch peer: the FastAPI app a PyTorch user would write by hand, with no batching,
served by one uvicorn worker with its access log off. It loads the same safetensors weights
with the generated project's own network code, and answers as ours' /predict does:
{"predictions": [...], "probabilities": [{class: probability}, ...]}.
"""

import json
import os
from pathlib import Path

import torch
from fastapi import FastAPI
from iris_classifier.core.model import MODEL_FILE, read_model

MODEL_DIR = Path(os.environ["BENCH_MODEL_DIR"])
METADATA = json.loads((MODEL_DIR / "metadata.json").read_text())
FEATURES = [feature["name"] for feature in METADATA["features"]]
CLASSES = [str(name) for name in METADATA["classes"]]
NETWORK = read_model(MODEL_DIR / MODEL_FILE, METADATA).network

app = FastAPI()


@app.get("/ready")
def ready() -> dict[str, str]:
    return {"status": "ready"}


# A plain `def`: FastAPI runs it in its thread pool, as its documentation advises for
# blocking work such as a forward pass.
@app.post("/predict")
def predict(rows: list[dict[str, float]]) -> dict:
    matrix = torch.tensor([[row[name] for name in FEATURES] for row in rows], dtype=torch.float64)
    with torch.inference_mode():
        probabilities = NETWORK(matrix).softmax(dim=1)
    labels = [CLASSES[index] for index in probabilities.argmax(dim=1).tolist()]
    return {
        "predictions": labels,
        "probabilities": [dict(zip(CLASSES, row, strict=True)) for row in probabilities.tolist()],
    }
