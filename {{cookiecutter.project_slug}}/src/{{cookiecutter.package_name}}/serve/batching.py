"""Adaptive micro-batching: concurrent requests share one model call.

One worker takes every request waiting in the queue and runs them as one model call in a
thread, off the event loop. Requests that arrive during that call queue up and form the next
batch, so batches grow with load by themselves. Before each call the worker also lets the
event loop run, so requests it has already received can join, for as long as that brings
new ones, up to `max_latency` seconds and `max_rows` rows: a lone request is never held back,
and none waits longer than the window. Each request gets its own rows back, in order; if a
gathered call fails, each request is run alone so one bad request cannot fail the others.
"""

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Result]):
    matrix: np.ndarray
    future: "asyncio.Future[Result]"


class MicroBatcher(Generic[Result]):
    def __init__(
        self,
        run: Callable[[np.ndarray], Result],
        split: Callable[[Result, list[int]], list[Result]],
        executor: Executor,
        max_rows: int,
        max_latency: float,
    ) -> None:
        self._run, self._split, self._executor = run, split, executor
        self._max_rows, self._max_latency = max_rows, max_latency
        self._pending: deque[_Pending[Result]] = deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def submit(self, matrix: np.ndarray) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(matrix, future))
        self._arrived.set()
        return await future

    async def _gather(self) -> list[_Pending[Result]]:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        pending = self._pending
        batch = [pending.popleft()]
        rows = len(batch[0].matrix)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_latency
        while rows < self._max_rows:
            if not pending:
                if loop.time() >= deadline:
                    break
                # Let the event loop run once, so requests it has already received join
                # this batch; stop gathering as soon as a pass brings nobody new.
                await asyncio.sleep(0)
                if not pending:
                    break
            if rows + len(pending[0].matrix) > self._max_rows:
                break  # it would overflow this batch: it starts the next one
            item = pending.popleft()
            batch.append(item)
            rows += len(item.matrix)
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [item for item in await self._gather() if not item.future.cancelled()]
            if not batch:
                continue
            sizes = [len(item.matrix) for item in batch]
            try:
                matrix = (
                    batch[0].matrix
                    if len(batch) == 1
                    else np.concatenate([i.matrix for i in batch])
                )
                results = self._split(
                    await loop.run_in_executor(self._executor, self._run, matrix), sizes
                )
            except Exception:
                await self._run_alone(batch)
                continue
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)

    async def _run_alone(self, batch: list[_Pending[Result]]) -> None:
        loop = asyncio.get_running_loop()
        for item in batch:
            try:
                result = await loop.run_in_executor(self._executor, self._run, item.matrix)
            except Exception as error:
                if not item.future.done():
                    item.future.set_exception(error)
            else:
                if not item.future.done():
                    item.future.set_result(result)
