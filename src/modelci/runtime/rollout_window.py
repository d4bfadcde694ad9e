"""A gradual rollout's counting, shared by everything that routes a share of an endpoint's
requests to a candidate version: the endpoint host (`modelci.serve.traffic`) and the Ray
Serve replicas of the version that serves (`modelci.runtime.ray_split`). Which request goes
to the candidate (`takes_candidate`) and what is counted of its answers (`Window`) live here
once, in the runtime, because the replicas run in the model's environment with nothing else
of modelci; `modelci.serve.split` re-exports them for the host side."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

LATENCIES_KEPT = 20_000  # per window: enough for a p99 over a bake of any sensible traffic


@dataclass
class Window:
    """The candidate's requests during one step (`step`: its event's id; 0 before the first)."""

    step: int
    percent: int
    requests: int = 0
    errors: int = 0  # any 5xx, whether the handler's or the router's (not delivered)
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


def takes_candidate(sent: int, percent: int) -> bool:
    """Whether the `sent`th request (from 1) of a step goes to the candidate: exactly
    `percent` of every hundred, spread evenly (no randomness to skew a small sample)."""
    return (sent * percent) // 100 > ((sent - 1) * percent) // 100
