"""Adaptive batching: the rows of concurrent requests go to the model in one predict call.

Everything runs on the event loop, predict included: with a small model a thread pool only adds
GIL contention (see bench/serve_bench.py). A request's rows are queued and a flush is scheduled
with `call_soon`, so it runs once the requests that are ready in this turn of the loop have
queued theirs; a request that is alone is therefore answered at once, never after a timer. Only
when another request is still reading its body does the flush wait, at most `max_wait_ms`, for it
to join. The merged rows are predicted once (up to `max_size` rows per call) and each request
gets exactly its own slice of the result. If a merged call fails, or returns a different number
of rows than it got, each request of that batch is predicted alone, so one bad request cannot
fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger("modelci.serve")


class _Item:
    __slots__ = ("future", "rows")

    def __init__(self, rows: np.ndarray, future: asyncio.Future[Any]):
        self.rows = rows
        self.future = future


def _settle(
    future: asyncio.Future[Any], result: Any = None, error: Exception | None = None
) -> None:
    if future.done():  # the request was cancelled (client went away)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """Merges concurrent requests' rows into single calls of `predict`."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], Any],
        *,
        max_size: int = 64,
        max_wait_ms: float = 2.0,
        observe: Callable[[int], None] | None = None,
    ):
        if max_size < 1:
            raise ValueError("batch max_size must be at least 1")
        self.predict = predict
        self.max_size = max_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.observe = observe
        self.arriving = 0
        self._pending: list[_Item] = []
        self._pending_rows = 0
        self._scheduled: asyncio.Handle | None = None
        self._timer = False

    def arrive(self) -> None:
        """A request has started and may submit rows soon (it is reading its body)."""
        self.arriving += 1

    def arrived(self) -> None:
        """A request that `arrive`d has submitted its rows or given up."""
        self.arriving -= 1
        if self.arriving == 0 and self._timer and self._scheduled is not None:
            # Nobody else is on the way: stop waiting.
            self._scheduled.cancel()
            self._scheduled = asyncio.get_running_loop().call_soon(self._flush)
            self._timer = False

    async def submit(self, rows: np.ndarray) -> Any:
        """The prediction for `rows` (a 2-D array), possibly computed with others' rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Item(rows, future))
        self._pending_rows += rows.shape[0]
        if self._pending_rows >= self.max_size:
            if self._scheduled is not None:
                self._scheduled.cancel()
            self._flush()
        elif self._scheduled is None:
            if self.arriving > 0 and self.max_wait > 0:
                self._scheduled = loop.call_later(self.max_wait, self._flush)
                self._timer = True
            else:
                self._scheduled = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = None
        self._timer = False
        pending, self._pending, self._pending_rows = self._pending, [], 0
        start = 0
        while start < len(pending):
            first = pending[start].rows
            rows = first.shape[0]
            end = start + 1
            while end < len(pending):
                candidate = pending[end].rows
                if (
                    rows + candidate.shape[0] > self.max_size
                    or candidate.shape[1:] != first.shape[1:]
                    or candidate.dtype != first.dtype
                ):
                    break
                rows += candidate.shape[0]
                end += 1
            self._run(pending[start:end], rows)
            start = end

    def _run(self, group: list[_Item], rows: int) -> None:
        if len(group) == 1:
            self._run_alone(group[0])
            return
        merged = np.concatenate([item.rows for item in group])
        if self.observe is not None:
            self.observe(rows)
        try:
            result = self.predict(merged)
        except Exception:
            log.warning("a batch of %d requests failed; predicting each alone", len(group))
            for item in group:
                self._run_alone(item)
            return
        if not hasattr(result, "__len__") or len(result) != rows:
            log.warning("predict returned no row per input row; predicting each request alone")
            for item in group:
                self._run_alone(item)
            return
        offset = 0
        for item in group:
            count = item.rows.shape[0]
            _settle(item.future, result[offset : offset + count])
            offset += count

    def _run_alone(self, item: _Item) -> None:
        if item.future.done():
            return
        if self.observe is not None:
            self.observe(item.rows.shape[0])
        try:
            result = self.predict(item.rows)
        except Exception as error:
            _settle(item.future, error=error)
        else:
            _settle(item.future, result)
