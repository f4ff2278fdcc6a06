"""Concurrent requests handed to a blocking service together, one batch at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio.to_thread

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batches(Generic[Item, Result]):
    """Runs `handle_all(items)` on a worker thread, one batch at a time (group commit).

    An item submitted while no batch runs starts one at once; items submitted while a batch
    runs wait and form the next batch together. Under load, many uploads then share one disk
    flush and one transaction, and the thread hand-offs are shared too; an idle server still
    answers a lone upload straight away. `handle_all` returns one result per item, an
    exception where that item failed.
    """

    def __init__(self, handle_all: Callable[[Sequence[Item]], list[Result | Exception]]) -> None:
        self._handle_all = handle_all
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await anyio.to_thread.run_sync(
                        self._handle_all, [item for item, _ in batch]
                    )
                except Exception as exc:  # handle_all itself failed: so did every item
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its request was cancelled meanwhile
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._runner = None
