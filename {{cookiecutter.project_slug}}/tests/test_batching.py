"""Micro-batching: results equal unbatched results, row for row, under concurrency."""

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from {{ cookiecutter.package_name }}.core.schema import FEATURE_NAMES, InputError
from {{ cookiecutter.package_name }}.core.settings import Settings
from {{ cookiecutter.package_name }}.serve.metrics import Metrics
from {{ cookiecutter.package_name }}.serve.model_holder import ModelHolder
from {{ cookiecutter.package_name }}.serve.prediction_service import (
    Prediction,
    PredictionService,
)

from .conftest import (
    NUMERIC,
    REGRESSION,
    ModelDouble,
    Overflowing,
    predicted_rows,
    training_data,
)


def training_rows() -> np.ndarray:
    """The training data's features, as the matrix the model takes."""
    return training_data()[0].to_numpy()


async def predict_concurrently(
    settings: Settings, chunks: list[np.ndarray], wrap: Callable[[Any], Any] = lambda m: m
) -> list[Prediction]:
    """Predict the chunks concurrently through one service, its model wrapped by `wrap`."""
    holder = ModelHolder(settings.model_dir)
    holder.load()
    holder.model = wrap(holder.model)
    service = PredictionService(settings, holder, Metrics())
    await service.start()
    try:
        results = await asyncio.gather(*(service.predict(chunk) for chunk in chunks))
    finally:
        await service.stop()
    assert [len(r.labels) for r in results] == [len(c) for c in chunks]
    return results


def test_batched_equals_unbatched_row_for_row(trained: Settings) -> None:
    features = training_rows()
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, size=200)
    starts = rng.integers(0, len(features) - 9, size=200)
    chunks = [features[s : s + n] for s, n in zip(starts, sizes, strict=True)]
    batched = asyncio.run(
        predict_concurrently(
            trained.model_copy(update={"batching": True, "batch_max_latency_ms": 5}), chunks
        )
    )
    alone = asyncio.run(
        predict_concurrently(trained.model_copy(update={"batching": False}), chunks)
    )
    assert len(batched) == len(alone) == len(chunks)
    for together, apart in zip(batched, alone, strict=True):
        assert together.labels.tolist() == apart.labels.tolist()
        if REGRESSION:  # values, and no probabilities
            assert together.labels.dtype == apart.labels.dtype == np.float64
            assert together.probabilities is None and apart.probabilities is None
            continue
        assert together.probabilities is not None and apart.probabilities is not None
        np.testing.assert_allclose(together.probabilities, apart.probabilities, rtol=1e-12)


def test_a_failing_request_does_not_fail_its_neighbours(
    trained: Settings, served_model: Any
) -> None:
    features = training_rows()
    good = features[:3]
    bad = np.ones((2, len(FEATURE_NAMES) + 1))  # wrong width: the model call fails

    async def run() -> list[Prediction | BaseException]:
        holder = ModelHolder(trained.model_dir)
        holder.load()
        service = PredictionService(
            trained.model_copy(update={"batch_max_latency_ms": 20}), holder, Metrics()
        )
        await service.start()
        try:
            return list(
                await asyncio.gather(
                    service.predict(good),
                    service.predict(bad),
                    service.predict(good),
                    return_exceptions=True,
                )
            )
        finally:
            await service.stop()

    first, failed, last = asyncio.run(run())
    assert isinstance(failed, ValueError)
    expected = predicted_rows(served_model, good)
    assert first.labels.tolist() == last.labels.tolist() == expected  # type: ignore[union-attr]


def test_a_row_the_model_cannot_score_fails_its_request_only(trained: Settings) -> None:
    """Finite values far beyond the training data overflow a model into NaN probabilities (a
    regressor's: NaN values): that request is refused, naming the row, and the requests
    batched with it are answered."""
    features = training_rows()
    far = features[:2].copy()
    far[1, FEATURE_NAMES.index(NUMERIC.name)] = 1e308

    async def run() -> list[Prediction | BaseException]:
        holder = ModelHolder(trained.model_dir)
        holder.load()
        holder.model = Overflowing(holder.model)
        settings = trained.model_copy(update={"batch_max_latency_ms": 20})
        service = PredictionService(settings, holder, Metrics())
        await service.start()
        try:
            return list(
                await asyncio.gather(
                    service.predict(features[:3]),
                    service.predict(far),
                    service.predict(features[:3]),
                    return_exceptions=True,
                )
            )
        finally:
            await service.stop()

    first, failed, last = asyncio.run(run())
    assert isinstance(failed, InputError) and "row 1 " in str(failed)
    for answered in (first, last):
        assert isinstance(answered, Prediction) and len(answered.labels) == 3
        if REGRESSION:
            assert answered.probabilities is None and np.isfinite(answered.labels).all()
        else:
            assert answered.probabilities is not None
            assert np.isfinite(answered.probabilities).all()


class CountingModel(ModelDouble):
    """The trained model, noting the row count of each call in `calls`."""

    def __init__(self, model: Any, calls: list[int]) -> None:
        super().__init__(model)
        self.calls = calls

    def called(self, matrix: np.ndarray) -> None:
        self.calls.append(len(matrix))


async def gathered_batch_sizes(settings: Settings, chunks: list[np.ndarray]) -> list[int]:
    """Predict the chunks concurrently; returns the row count of each model call."""
    calls: list[int] = []
    await predict_concurrently(settings, chunks, lambda model: CountingModel(model, calls))
    return calls


def test_concurrent_requests_share_model_calls(trained: Settings) -> None:
    features = training_rows()
    chunks = [features[i : i + 3] for i in range(0, 60, 3)]
    settings = trained.model_copy(update={"batch_max_rows": 10, "batch_max_latency_ms": 20})
    sizes = asyncio.run(gathered_batch_sizes(settings, chunks))
    assert sum(sizes) == 60
    # Three requests of 3 rows fill a call; a fourth would overflow the 10-row limit.
    assert sizes == [9] * 6 + [6]


def test_large_requests_bypass_the_batcher(trained: Settings) -> None:
    """Requests of BATCH_MAX_ROWS rows or more go straight to the model thread."""
    features = training_rows()
    settings = trained.model_copy(update={"batch_max_rows": 16, "batch_max_latency_ms": 20})
    submitted: list[int] = []

    async def run() -> None:
        holder = ModelHolder(settings.model_dir)
        holder.load()
        service = PredictionService(settings, holder, Metrics())
        assert service.batcher is not None
        submit = service.batcher.submit

        async def recording_submit(matrix: np.ndarray) -> Any:
            submitted.append(len(matrix))
            return await submit(matrix)

        service.batcher.submit = recording_submit  # type: ignore[method-assign]
        await service.start()
        try:
            results = await asyncio.gather(
                *(service.predict(m) for m in (features, features[:4], features[:16]))
            )
        finally:
            await service.stop()
        assert [len(r.labels) for r in results] == [len(features), 4, 16]

    asyncio.run(run())
    assert submitted == [4]


def test_batching_off_calls_the_model_once_per_request(trained: Settings) -> None:
    features = training_rows()
    settings = trained.model_copy(update={"batching": False})
    chunks = [features[i : i + 3] for i in range(0, 30, 3)]
    assert asyncio.run(gathered_batch_sizes(settings, chunks)) == [3] * 10
