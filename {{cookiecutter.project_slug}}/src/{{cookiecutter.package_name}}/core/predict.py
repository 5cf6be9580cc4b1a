"""The prediction core shared by batch scoring and every HTTP protocol."""

from typing import Any

import numpy as np


def predict_matrix(model: Any, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels for each row, and class probabilities when the model has them."""
    if hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(matrix), dtype=np.float64)
        labels = np.asarray(model.classes_)[probabilities.argmax(axis=1)]
        return labels, probabilities
    return np.asarray(model.predict(matrix)), None
