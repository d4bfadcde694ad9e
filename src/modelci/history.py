"""What `modelci history` shows: a model's events, newest first. Hosts write two kinds in bulk
(`rollout_traffic` about every 2 s of a rollout with traffic, `shadow_batch` per batch of a
shadow's pairs), which would bury the deploys, promotions and rollbacks a person looks for: a
person's view leaves them out and counts them; `--all` and `--json` keep every event."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from modelci.registry.base import Event, Registry
from modelci.serve.split import TRAFFIC
from modelci.shadow.pairs import BATCH_KIND

BULK_KINDS = frozenset({TRAFFIC, BATCH_KIND})


@dataclass
class History:
    """The events shown, newest first, and how many of each bulk kind were left out."""

    events: list[Event]
    hidden: Counter[str] = field(default_factory=Counter)


def history(
    registry: Registry, model: str, *, limit: int | None = None, everything: bool = True
) -> History:
    """`model`'s newest events (at most `limit` shown); unless `everything`, those of the
    bulk kinds are left out, and counted among the events newer than the oldest one shown
    (all of them when fewer than `limit` are shown)."""
    events = registry.events(model, limit=limit)
    if everything:
        return History(events)
    if limit is not None and len(events) == limit and any(e.kind in BULK_KINDS for e in events):
        events = registry.events(model)  # the limit counts the events shown: read on
    shown: list[Event] = []
    hidden: Counter[str] = Counter()
    for event in events:
        if limit is not None and len(shown) == limit:
            break
        if event.kind in BULK_KINDS:
            hidden[event.kind] += 1
        else:
            shown.append(event)
    return History(shown, hidden)


def describe_hidden(hidden: Counter[str]) -> str | None:
    """`12 rollout_traffic and 3 shadow_batch events hidden (--all shows them)`, or None."""
    if not hidden:
        return None
    counts = " and ".join(f"{n} {kind}" for kind, n in sorted(hidden.items()))
    return f"{counts} event{'s' if sum(hidden.values()) > 1 else ''} hidden (--all shows them)"
