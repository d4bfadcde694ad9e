"""Data capture in the endpoint host (`[serve.capture] percent`): a sampled share of each
endpoint's requests and answers, written in SageMaker's data-capture format, one JSON line per
record, in batched files through the artifact store:

    capture/<endpoint>/<version>/yyyy/mm/dd/hh/<uuid>.jsonl

The host proxies every version server (process or container), so sampling here serves both.
A request pays for one random draw and, when sampled, one append to a bounded list: encoding
and writing happen in a thread, off the request's path. When the list is full (the store is
slow or down) a record is dropped and counted, never the request slowed or failed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelci.errors import ModelciError

if TYPE_CHECKING:
    from modelci.serve.proxy import Answer
    from modelci.serve.workers import LaunchSpec
    from modelci.store.base import Store

PREFIX = "capture"
FLUSH_S = 5.0  # the longest a record waits for its file
BATCH = 1000  # records that make a file at once
MAX_PENDING = 20_000  # records held while the store is slow; beyond, dropped and counted
_JSON = ("application/json", "application/jsonlines", "application/x-ndjson")
_CSV = ("text/csv",)

log = logging.getLogger("modelci.serve")


@dataclass(frozen=True)
class Sampled:
    """One request and its answer, as the host saw them; encoded later, in the writer."""

    endpoint: str
    version: str
    at: float
    request: bytes
    request_type: str
    answer: bytes
    answer_type: str


def _encoded(data: bytes, content_type: str, mode: str) -> dict[str, str]:
    """SageMaker's `endpointInput`/`endpointOutput`: JSON and CSV kept as text, anything else
    (or text that is not UTF-8) base64."""
    media = content_type.partition(";")[0].strip().lower()
    encoding = "JSON" if media in _JSON else "CSV" if media in _CSV else "BASE64"
    text = None
    if encoding != "BASE64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if text is None:
        text = base64.b64encode(data).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": text, "encoding": encoding}


def record_line(sampled: Sampled) -> str:
    """One capture record, as SageMaker writes it, on one line."""
    return json.dumps(
        {
            "captureData": {
                "endpointInput": _encoded(sampled.request, sampled.request_type, "INPUT"),
                "endpointOutput": _encoded(sampled.answer, sampled.answer_type, "OUTPUT"),
            },
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sampled.at)),
            },
            "eventVersion": "0",
        },
        separators=(",", ":"),
    )


def file_name(endpoint: str, version: str, at: float) -> str:
    """`capture/<endpoint>/<version>/yyyy/mm/dd/hh/<uuid>.jsonl` for records of the hour of
    `at` (UTC)."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(at))
    return f"{PREFIX}/{endpoint}/{version}/{hour}/{uuid.uuid4().hex}.jsonl"


def write_batch(store: Store, records: list[Sampled]) -> int:
    """Write `records` as one file per endpoint, version and hour; the number of files."""
    groups: dict[tuple[str, str, int], list[Sampled]] = {}
    for sampled in records:
        key = (sampled.endpoint, sampled.version, int(sampled.at // 3600))
        groups.setdefault(key, []).append(sampled)
    for (endpoint, version, _), group in groups.items():
        text = "".join(record_line(sampled) + "\n" for sampled in group)
        store.put_named(file_name(endpoint, version, group[0].at), text.encode("utf-8"))
    return len(groups)


class Capture:
    """One host's sampled records, and the task that writes them in batches."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        *,
        flush_s: float = FLUSH_S,
        batch: int = BATCH,
        max_pending: int = MAX_PENDING,
    ):
        self.open_store = open_store
        self.flush_s = flush_s
        self.batch = batch
        self.max_pending = max_pending
        self.pending: list[Sampled] = []
        self.counts = {"captured": 0, "dropped": 0, "written": 0, "files": 0}
        self.last_error: str | None = None
        self.wake = asyncio.Event()
        self.store: Store | None = None
        self.random = random.random

    def offer(
        self, spec: LaunchSpec, request: bytes, request_type: str | None, answer: Answer
    ) -> None:
        """Keep this invocation with probability `[serve.capture] percent` / 100 when it was
        answered with success; never raises, never waits."""
        percent = spec.capture_percent
        if percent <= 0 or answer.status >= 300 or self.random() * 100 >= percent:
            return
        if len(self.pending) >= self.max_pending:
            self.counts["dropped"] += 1
            return
        self.counts["captured"] += 1
        self.pending.append(
            Sampled(
                spec.endpoint,
                spec.version,
                time.time(),
                request,
                request_type or "application/json",
                answer.body,
                answer.content_type or "application/octet-stream",
            )
        )
        if len(self.pending) >= self.batch:
            self.wake.set()

    async def run(self) -> None:
        """Write what was sampled every `flush_s` seconds, or sooner once a batch is full."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.flush_s)
            self.wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write the pending records now; records a failed write held are dropped and counted
        (the host never retries without bound while requests keep coming)."""
        if not self.pending:
            return
        records, self.pending = self.pending, []
        try:
            files = await asyncio.to_thread(self._write, records)
        except Exception as error:  # the store failing never reaches a request
            self.counts["dropped"] += len(records)
            reason = error.render() if isinstance(error, ModelciError) else repr(error)
            if self.last_error is None:
                log.warning("data capture: %s records dropped: %s", len(records), reason)
            self.last_error = reason
            return
        self.last_error = None
        self.counts["written"] += len(records)
        self.counts["files"] += files

    def _write(self, records: list[Sampled]) -> int:
        if self.store is None:
            self.store = self.open_store()
        return write_batch(self.store, records)

    def describe(self) -> dict[str, Any]:
        """Counts since the host started, for `/-/endpoints`."""
        return {**self.counts, "pending": len(self.pending), "last_error": self.last_error}
