"""The data schema: the one place that names the model's inputs and its target.

To use your own data, change FEATURES, TARGET and `load_sample()`; the request schema of the
API, the batch file checks and the V2 tensor metadata all follow from here. InputError, the
error of any input that does not fit the schema, says where it is wrong.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

FeatureType = Literal["float", "int"]


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    description: str
    example: float


FEATURES: tuple[Feature, ...] = (
    Feature("sepal_length", "float", "Sepal length in cm", 5.1),
    Feature("sepal_width", "float", "Sepal width in cm", 3.5),
    Feature("petal_length", "float", "Petal length in cm", 1.4),
    Feature("petal_width", "float", "Petal width in cm", 0.2),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
TARGET = "species"


class InputError(ValueError):
    """Input that does not match the feature schema. `location` says where, e.g. [3, 'x']."""

    def __init__(self, location: Sequence[str | int], message: str) -> None:
        self.location = list(location)
        self.message = message
        where = ".".join(str(part) for part in self.location)
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self) -> tuple[type, tuple[list[str | int], str]]:
        # So the error crosses process boundaries (a Dask worker's error reaches the client).
        return (type(self), (self.location, self.message))


def load_sample() -> tuple[Any, Any]:
    """The bundled training data: the iris measurements that ship with scikit-learn."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=dict(zip(iris.feature_names, FEATURE_NAMES, strict=True)))
    frame[TARGET] = np.asarray(iris.target_names)[iris.target]
    return frame[list(FEATURE_NAMES)], frame[TARGET]
