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

from typing import TYPE_CHECKING, Any

from modelci.runtime.rollout_window import Window, percentile, takes_candidate

if TYPE_CHECKING:
    from modelci.registry.base import Pointer, Registry

STEP = "rollout_step"
TRAFFIC = "rollout_traffic"
STEPS_READ = 50  # the newest step events of a model looked at
__all__ = [
    "STEP",
    "TRAFFIC",
    "Window",
    "current_step",
    "gradual",
    "percentile",
    "split_view",
    "takes_candidate",
]


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
