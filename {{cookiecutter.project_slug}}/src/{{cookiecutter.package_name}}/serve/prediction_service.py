"""PredictionService: the one path from a validated matrix to predictions, for every route."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..core.predict import predict_matrix
from ..core.schema import InputError
from ..core.settings import FRAMEWORK, Settings
from .batching import MicroBatcher
from .metrics import Metrics
from .model_holder import ModelHolder


class NotReady(RuntimeError):
    """No model is loaded (still loading, or it failed to load)."""


class TooManyRows(ValueError):
    """More rows in one request than MAX_BATCH_ROWS."""


@dataclass(frozen=True)
class Prediction:
    labels: np.ndarray
    probabilities: np.ndarray | None
    # Rows the model could not score (True), or None when it scored them all.
    unscored: np.ndarray | None = None

    def rows(self, sizes: list[int]) -> list["Prediction"]:
        bounds = np.cumsum(sizes)[:-1]
        labels = np.split(self.labels, bounds)
        # A regressor's values come without probabilities, and may have unscored rows too.
        probabilities: list[np.ndarray | None] = (
            [None] * len(labels)
            if self.probabilities is None
            else list(np.split(self.probabilities, bounds))
        )
        unscored: list[np.ndarray | None] = (
            [None] * len(labels) if self.unscored is None else list(np.split(self.unscored, bounds))
        )
        return [Prediction(*part) for part in zip(labels, probabilities, unscored, strict=True)]


class PredictionService:
    def __init__(self, settings: Settings, holder: ModelHolder, metrics: Metrics) -> None:
        self.settings, self.holder, self.metrics = settings, holder, metrics
        # One thread for model calls: a small model gains little from more,
        # and the event loop stays free to answer probes while it runs.
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="model", initializer=holder.prepare_thread
        )
        self.batcher: MicroBatcher[Prediction] | None = None
        if settings.batching:
            self.batcher = MicroBatcher(
                run=self._run,
                split=Prediction.rows,
                executor=self.executor,
                max_rows=settings.batch_max_rows,
                max_latency=settings.batch_max_latency_ms / 1000,
            )

    def _run(self, matrix: np.ndarray) -> Prediction:
        self.metrics.batch_rows.observe(len(matrix))
        # Finite inputs far out of the training range (1e300) overflow the model's arithmetic
        # and give NaN probabilities: found here, once per model call and off the event loop,
        # and refused by `predict`, so NumPy need not warn about them.
        with np.errstate(over="ignore", invalid="ignore"):
            labels, probabilities = predict_matrix(self.holder.model, matrix)
        unscored = None
        if probabilities is not None and not np.isfinite(probabilities).all():
            unscored = ~np.isfinite(probabilities).all(axis=1)
        elif probabilities is None and labels.dtype.kind == "f" and not np.isfinite(labels).all():
            unscored = ~np.isfinite(labels)  # a regressor's values
        return Prediction(labels, probabilities, unscored)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.holder.metadata.get("classes", [])]

    @property
    def platform(self) -> str:
        """The model's platform as the Open Inference Protocol names it: ONNX Runtime's
        (Triton's name for it), or the framework's own when the native model serves."""
        runtime = self.holder.runtime
        if runtime is not None and runtime.name == "onnx":
            return "onnxruntime_onnx"
        return FRAMEWORK

    @property
    def model_version(self) -> str:
        return str(self.holder.metadata.get("model_version", ""))

    async def start(self) -> None:
        if self.batcher is not None:
            self.batcher.start()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        self.executor.shutdown(wait=False)

    def check_rows(self, rows: int) -> None:
        if rows > self.settings.max_batch_rows:
            raise TooManyRows(
                f"{rows} rows in one request is more than MAX_BATCH_ROWS="
                f"{self.settings.max_batch_rows}; split it into smaller requests"
            )

    async def predict(self, matrix: np.ndarray) -> Prediction:
        if not self.holder.ready:
            raise NotReady(self.holder.error or "the model is still loading")
        if len(matrix) == 0:
            raise InputError([], "no rows to predict")
        self.check_rows(len(matrix))
        if self.batcher is not None and len(matrix) < self.settings.batch_max_rows:
            result = await self.batcher.submit(matrix)
        else:
            result = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._run, matrix
            )
        if result.unscored is not None and result.unscored.any():
            row = int(result.unscored.argmax())
            raise InputError(
                [],
                f"row {row} (counting from 0) is too far out of the range the model was "
                "trained on: its values overflow the model's arithmetic; check their units",
            )
        self.metrics.predictions.inc(len(matrix))
        return result
