"""The endpoint host's log of shadow pairs, off the request path: a pair is appended to a
bounded buffer (dropped and counted when it is full), and a background task writes the
buffer in batches of JSON lines through the store, each announced in the registry
(`modelci.shadow.pairs`). Writing never holds up a request; a batch that cannot be written
is counted as dropped, and the next one tried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from modelci.shadow.pairs import batch_event, encode

if TYPE_CHECKING:
    from modelci.workspace import Workspace

BATCH = 2000  # pairs per batch, at most
FLUSH_S = 2.0  # a batch is written at least this often while pairs come
MAX_BUFFERED = 20_000  # pairs waiting to be written; more are dropped and counted

log = logging.getLogger("modelci.serve")

# (model, environment, candidate version, shadow event id): the pairs of one batch share it
Key = tuple[str, str, str, int]


class PairLog:
    """Pairs waiting to be written, and the drops not yet announced."""

    def __init__(self, workspace: Workspace, host: str | None = None):
        self.workspace = workspace
        self.host = host
        self.buffer: list[tuple[Key, dict[str, Any]]] = []
        self.dropped: Counter[Key] = Counter()
        self.written = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def record(self, key: Key, pair: dict[str, Any]) -> None:
        """Keep a pair for the next batch, or count it dropped when the buffer is full."""
        if len(self.buffer) >= MAX_BUFFERED:
            self.dropped[key] += 1
            return
        self.buffer.append((key, pair))
        if len(self.buffer) >= BATCH:
            self.wake.set()
        self.start()

    def drop(self, key: Key) -> None:
        """Count a mirrored request that was not sent (too many in flight)."""
        self.dropped[key] += 1
        self.start()

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), FLUSH_S)
            self.wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write what is buffered now (in a worker thread), BATCH pairs per batch."""
        while self.buffer or self.dropped:
            taken, self.buffer = self.buffer[:BATCH], self.buffer[BATCH:]
            dropped, self.dropped = self.dropped, Counter()
            try:
                await asyncio.to_thread(self.write, taken, dropped)
            except Exception as error:  # the store or registry failed: count, go on
                log.warning("could not write %d shadow pairs: %r", len(taken), error)
                for key, _ in taken:
                    self.dropped[key] += 1
                self.dropped.update(dropped)
                return

    def write(self, taken: list[tuple[Key, dict[str, Any]]], dropped: Counter[Key]) -> None:
        """One batch per shadow through the store, each announced in the registry."""
        groups: dict[Key, list[dict[str, Any]]] = {key: [] for key in dropped}
        for key, pair in taken:
            groups.setdefault(key, []).append(pair)
        workspace = type(self.workspace)(self.workspace.root)
        store = workspace.store()
        with workspace.registry() as registry:
            for key, pairs in groups.items():
                model, environment, version, shadow = key
                digest = store.put_bytes(encode(pairs)).sha256 if pairs else None
                details = {
                    "shadow": shadow,
                    "sha256": digest,
                    "count": len(pairs),
                    "dropped": dropped.get(key, 0),
                    "host": self.host,
                }
                registry.append_event(batch_event(model, environment, version, details))
                self.written += len(pairs)

    async def close(self) -> None:
        """Write what is left and stop."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.flush()
