"""Micro-batching: results equal unbatched results, row for row, under concurrency."""

import asyncio

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.features import load_sample
from {{ cookiecutter.package_name }}.serve.metrics import Metrics
from {{ cookiecutter.package_name }}.serve.service import PredictionService
from {{ cookiecutter.package_name }}.serve.state import ModelHolder


async def predict_concurrently(
    settings: Settings, chunks: list[np.ndarray]
) -> list[tuple[list[str], np.ndarray]]:
    holder = ModelHolder(settings.model_dir)
    holder.load()
    service = PredictionService(settings, holder, Metrics())
    await service.start()
    try:
        results = await asyncio.gather(*(service.predict(chunk) for chunk in chunks))
    finally:
        await service.stop()
    return [(r.labels.tolist(), r.probabilities) for r in results]


def test_batched_equals_unbatched_row_for_row(trained: Settings) -> None:
    features = load_sample()[0].to_numpy()
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
    for (labels_b, proba_b), (labels_a, proba_a), chunk in zip(batched, alone, chunks, strict=True):
        assert labels_b == labels_a
        assert len(labels_b) == len(chunk)
        np.testing.assert_allclose(proba_b, proba_a, rtol=1e-12)


def test_a_failing_request_does_not_fail_its_neighbours(trained: Settings) -> None:
    features = load_sample()[0].to_numpy()
    good, bad = features[:3], np.ones((2, 3))  # wrong width: the model call fails

    async def run() -> list[object]:
        holder = ModelHolder(trained.model_dir)
        holder.load()
        service = PredictionService(
            trained.model_copy(update={"batch_max_latency_ms": 20}), holder, Metrics()
        )
        await service.start()
        try:
            return await asyncio.gather(
                service.predict(good),
                service.predict(bad),
                service.predict(good),
                return_exceptions=True,
            )
        finally:
            await service.stop()

    first, failed, last = asyncio.run(run())
    assert isinstance(failed, ValueError)
    assert first.labels.tolist() == last.labels.tolist() == ["setosa"] * 3  # type: ignore[union-attr]


@pytest.mark.parametrize("batching", [True, False])
def test_large_requests_bypass_the_batcher_unchanged(trained: Settings, batching: bool) -> None:
    features = load_sample()[0].to_numpy()
    settings = trained.model_copy(update={"batching": batching, "batch_max_rows": 16})
    [(labels, _)] = asyncio.run(predict_concurrently(settings, [features]))
    assert len(labels) == len(features)


def test_batches_never_exceed_the_row_limit(trained: Settings) -> None:
    features = load_sample()[0].to_numpy()
    sizes: list[int] = []

    async def run() -> None:
        holder = ModelHolder(trained.model_dir)
        holder.load()
        settings = trained.model_copy(update={"batch_max_rows": 10, "batch_max_latency_ms": 20})
        service = PredictionService(settings, holder, Metrics())
        assert service.batcher is not None
        service.batcher._on_batch = sizes.append
        await service.start()
        try:
            await asyncio.gather(*(service.predict(features[i : i + 3]) for i in range(0, 60, 3)))
        finally:
            await service.stop()

    asyncio.run(run())
    assert sum(sizes) == 60
    assert max(sizes) <= 10
