"""The shadow pairs: for each mirrored request, the live answer and the candidate's, with
their latencies, under one event id. The host writes them in batches of JSON lines through
the artifact store, each batch announced by a `shadow_batch` event in the registry (its
digest, its count, and how many pairs were dropped under pressure), so that any command
reading the same registry and store finds them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError

if TYPE_CHECKING:
    from modelci.registry.base import Event, Registry
    from modelci.store.base import Store

BATCH_KIND = "shadow_batch"  # the registry event announcing one batch of pairs
START_KIND, END_KIND = "shadow", "shadow_end"  # a shadow's start and end
REPORT_KIND = "shadow_report"  # a host following the registry says it mirrors (or cannot)
BODY_LIMIT = 64 * 1024  # bytes of each answer kept in a pair


@dataclass(frozen=True)
class Side:
    """One side of a pair: the version that answered, how, and how fast."""

    version: str
    status: int | None  # None: no answer (the candidate could not be reached, timed out)
    latency_ms: float
    body: bytes
    content_type: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        text = self.body[:BODY_LIMIT].decode("utf-8", errors="replace")
        return {
            "version": self.version,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "content_type": self.content_type,
            "body": text,
            "truncated": len(self.body) > BODY_LIMIT,
            "error": self.error,
        }


def pair(
    shadow: int, model: str, environment: str, endpoint: str, live: Side, candidate: Side
) -> dict[str, Any]:
    """One pair's record: `id` is its own event id, `shadow` the id of the event that
    started the shadow it belongs to."""
    return {
        "id": uuid.uuid4().hex,
        "shadow": shadow,
        "time": time.time(),
        "model": model,
        "environment": environment,
        "endpoint": endpoint,
        "live": live.to_json(),
        "candidate": candidate.to_json(),
    }


def encode(pairs: list[dict[str, Any]]) -> bytes:
    """A batch as JSON lines."""
    return "".join(json.dumps(p, separators=(",", ":")) + "\n" for p in pairs).encode()


def decode(data: bytes, where: str) -> list[dict[str, Any]]:
    """A batch's pairs; a ConfigError naming the batch when a line is not a pair."""
    found = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError as error:
            raise ConfigError(f"{where}, line {number}: not JSON: {error}") from None
        if not isinstance(document, dict) or not {"live", "candidate"} <= set(document):
            raise ConfigError(f"{where}, line {number}: not a shadow pair")
        found.append(document)
    return found


def batch_event(
    model: str,
    environment: str,
    version: str,
    details: Mapping[str, Any],
    actor: str | None = None,
) -> Event:
    """The registry's announcement of one batch (or of drops with no batch)."""
    from modelci.registry.base import Event

    return Event(
        kind=BATCH_KIND,
        model=model,
        version=version,
        environment=environment,
        actor=actor,
        details=dict(details),
    )


@dataclass(frozen=True)
class Session:
    """One shadow, from its start event: what it mirrored to, and its announced batches."""

    event: int
    version: str
    batches: list[Event]

    @property
    def dropped(self) -> int:
        return sum(int(b.details.get("dropped") or 0) for b in self.batches)


def sessions(registry: Registry, model: str, environment: str) -> dict[int, Session]:
    """The environment's shadows that announced batches, by their start event's id."""
    found: dict[int, Session] = {}
    for event in registry.events(model, kind=BATCH_KIND, environment=environment):
        shadow = event.details.get("shadow")
        if not isinstance(shadow, int) or event.version is None:
            continue
        session = found.setdefault(shadow, Session(shadow, event.version, []))
        session.batches.append(event)  # newest first
    return found


def read_pairs(store: Store, session: Session, limit: int) -> Iterator[dict[str, Any]]:
    """The session's pairs, newest batch first, at most `limit`."""
    left = limit
    for batch in session.batches:
        digest = batch.details.get("sha256")
        if not digest or left <= 0:
            continue
        pairs = decode(store.get_bytes(str(digest)), f"shadow batch {digest}")
        yield from pairs[:left]
        left -= len(pairs)
