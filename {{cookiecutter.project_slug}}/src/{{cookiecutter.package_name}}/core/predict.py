"""The prediction core shared by batch scoring and every HTTP protocol."""

from typing import Any

import numpy as np

from .schema import TASK


def predict_matrix(model: Any, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """What the schema's task asks of the model for each row: a classifier's labels and its
    class probabilities, a regressor's values (float64) and None."""
    if TASK == "regression":
        return np.asarray(model.predict(matrix), dtype=np.float64), None
    probabilities = np.asarray(model.predict_proba(matrix), dtype=np.float64)
    labels = np.asarray(model.classes_)[probabilities.argmax(axis=1)]
    return labels, probabilities
