"""A gradual rollout's shared vocabulary, between the deploy that drives it
(`modelci.deploy.guardrails`) and the hosts that route by it (`modelci.serve.traffic`).

While a pointer's deploy intent is `gradual`, a host keeps serving the previous version and
starts the pointer's version beside it as the candidate, with no traffic. The deploy then
appends `rollout_step` events (the candidate's share, for the pointer's generation); each
host routes that share of the endpoint's requests to the candidate and counts the candidate's
requests, errors, handler 5xx and latencies since the step began: its window. A local host
shows its windows in `/-/endpoints`; a host following a shared registry reports them as
`rollout_traffic` events. Once the deploy settles the pointer the candidate takes all traffic
and the old version stops; once it puts the previous version back the candidate stops."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelci.registry.base import Pointer, Registry

STEP = "rollout_step"
TRAFFIC = "rollout_traffic"
STEPS_READ = 50  # the newest step events of a model looked at
LATENCIES_KEPT = 20_000  # per window: enough for a p99 over a bake of any sensible traffic


@dataclass
class Window:
    """The candidate's requests during one step (`step`: its event's id; 0 before the first)."""

    step: int
    percent: int
    requests: int = 0
    errors: int = 0  # any 5xx, whether the handler's or the host's (not delivered)
    model_errors: int = 0  # 5xx answered by the version's handler
    latencies_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    first_error: float | None = None  # when the first error of this window was seen

    def count(self, status: int | None, seconds: float) -> None:
        """One request to the candidate: its answer's status (None: not delivered)."""
        self.requests += 1
        if status is None or status >= 500:
            self.errors += 1
            if self.first_error is None:
                self.first_error = time.time()
        if status is not None and status >= 500:
            self.model_errors += 1
        if len(self.latencies_ms) < LATENCIES_KEPT:
            self.latencies_ms.append(seconds * 1000)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "percent": self.percent,
            "requests": self.requests,
            "errors": self.errors,
            "model_errors": self.model_errors,
            "p99_ms": percentile(self.latencies_ms, 99),
            "started": self.started,
            "first_error": self.first_error,
        }


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank `q`th percentile, None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def gradual(pointer: Pointer) -> bool:
    """Whether the pointer's unfinished deploy moves traffic in steps."""
    return pointer.pending is not None and pointer.pending.gradual


def current_step(registry: Registry, pointer: Pointer) -> tuple[int, int]:
    """(step event id, candidate percent) in force for a gradual pointer; (0, 0) before the
    first step."""
    for event in registry.events(pointer.model, kind=STEP, limit=STEPS_READ):
        if (
            event.environment == pointer.environment
            and event.details.get("generation") == pointer.generation
            and event.version == pointer.version
            and event.id is not None
        ):
            return event.id, int(event.details["percent"])
    return 0, 0


def takes_candidate(sent: int, percent: int) -> bool:
    """Whether the `sent`th request (from 1) of a step goes to the candidate: exactly
    `percent` of every hundred, spread evenly (no randomness to skew a small sample)."""
    return (sent * percent) // 100 > ((sent - 1) * percent) // 100


def split_view(registry: Registry, pointer: Pointer) -> dict[str, Any] | None:
    """A gradual rollout in progress as `status` shows it: the candidate's and the previous
    version's shares of the requests now; None when the pointer has none under way."""
    if not gradual(pointer) or pointer.pending is None:
        return None
    step, percent = current_step(registry, pointer)
    return {
        "candidate": pointer.version,
        "candidate_percent": percent,
        "previous": pointer.pending.previous,
        "previous_percent": 100 - percent,
        "step": step or None,
    }
