"""Canary and linear rollouts on a backend that routes by weight (the endpoint host, locally
or following a shared registry, and Ray Serve's replicas): after the pointer moved with a
`gradual` intent, wait until the candidate runs beside the old version, then for each step of
`[deploy.rollout]` record the candidate's share (`rollout_step`, modelci.serve.split), wait
until the hosts route it, and bake: watch the candidate's own requests of that step against
the alarms. An alarm raises RolloutAlarm, and the caller (`modelci.deploy.rollout`) puts the
old version back, which takes all traffic at once."""

from __future__ import annotations

import time
from typing import Any

from modelci.deploy.base import Deployer, Served, Superseded, stop_if_superseded
from modelci.errors import ConfigError, DeployFailed, RolloutAlarm
from modelci.progress import Progress
from modelci.registry.base import Event, Pointer, Registry
from modelci.rolloutspec import Rollout, rollout_for
from modelci.serve.split import STEP
from modelci.spec import ModelSpec
from modelci.workspace import Workspace

POLL_S = 0.1  # how often the hosts' windows are read during a bake


def gradual_plan(
    workspace: Workspace,
    deployer: Deployer,
    spec: ModelSpec,
    environment: str,
    previous: str | None,
    kind: str,
) -> Rollout | None:
    """The rollout this deploy runs in steps, or None: all at once (the strategy says so, no
    version serves yet, a rollback, or a backend that runs its own rollouts)."""
    plan = rollout_for(workspace.project, spec, environment)
    if not plan.gradual or previous is None or kind == "rollback" or deployer.native_rollout:
        return None
    if not deployer.weighted:
        backend = workspace.project.deploy.backend
        raise ConfigError(
            f"a {plan.strategy} rollout needs a backend that routes by weight (local, ray, "
            f"container, host, sagemaker); the {backend} backend deploys all_at_once only",
            key="deploy.rollout.strategy",
        )
    return plan


def roll_out(
    registry: Registry,
    deployer: Deployer,
    moved: Pointer,
    endpoint: str,
    plan: Rollout,
    timeout: float,
    superseded: Superseded,
    note: Progress,
) -> Served:
    """Move the traffic to `moved`'s version in the plan's steps, each baked under the alarms.
    Raises RolloutAlarm, DeployFailed (the candidate did not start, or died), DeploySuperseded."""
    version = moved.version
    note(f"{endpoint}: starting {version} beside {_previous(moved)} ({plan.strategy})")
    ready = _wait(deployer, endpoint, moved, None, timeout, superseded)
    for percent in (*plan.steps, 100):
        bake = plan.bake_seconds if percent < 100 else plan.termination_wait_seconds
        if percent == 100 and bake == 0:
            break  # settling the pointer gives it all traffic
        step = registry.append_event(
            Event(
                kind=STEP,
                model=moved.model,
                version=version,
                environment=moved.environment,
                details={
                    "generation": moved.generation,
                    "percent": percent,
                    "strategy": plan.strategy,
                    "previous": _previous(moved),
                },
            )
        )
        assert step.id is not None
        ready = _wait(deployer, endpoint, moved, step.id, timeout, superseded)
        note(f"{endpoint}: {percent}% of requests to {version}, baking {bake:g} s")
        _bake(deployer, endpoint, moved, step.id, percent, bake, plan, superseded)
    url = ready.get("url")
    return Served(endpoint, version, url, url)


def _previous(pointer: Pointer) -> str | None:
    return pointer.pending.previous if pointer.pending else None


def _states(
    deployer: Deployer, endpoint: str, moved: Pointer, follow: bool
) -> list[dict[str, Any]]:
    """The hosts' views of this rollout (another generation's are left out)."""
    return [
        state
        for state in deployer.rollout_state(endpoint, follow)
        if state.get("generation") == moved.generation and state.get("candidate") == moved.version
    ]


def _wait(
    deployer: Deployer,
    endpoint: str,
    moved: Pointer,
    step: int | None,
    timeout: float,
    superseded: Superseded,
) -> dict[str, Any]:
    """A host's view once its candidate is ready (and routes `step`, when given). Raises
    DeployFailed when a host could not start the candidate, or at the deadline."""
    deadline = time.monotonic() + timeout
    follow = True
    while True:
        for state in _states(deployer, endpoint, moved, follow):
            if state.get("failed"):
                raise DeployFailed(
                    f"{endpoint}: host {state.get('host')} could not start {moved.version} "
                    f"beside {_previous(moved)}: {state['failed']}"
                )
            if state.get("ready") and (step is None or state.get("step") == step):
                return state
        stop_if_superseded(superseded, endpoint, moved.version)
        if time.monotonic() > deadline:
            what = "start" if step is None else "take its share of the traffic"
            raise DeployFailed(f"{endpoint}: {moved.version} did not {what} within {timeout:g} s")
        follow = False
        time.sleep(POLL_S)


def _bake(
    deployer: Deployer,
    endpoint: str,
    moved: Pointer,
    step: int,
    percent: int,
    bake: float,
    plan: Rollout,
    superseded: Superseded,
) -> None:
    """Serve the step for `bake` seconds; raise RolloutAlarm as soon as the candidate's own
    requests of the step (at least `min_requests` of them, or any at the end) set one off."""
    end = time.monotonic() + bake
    while True:
        over = time.monotonic() >= end
        states = [s for s in _states(deployer, endpoint, moved, False) if s.get("step") == step]
        for state in states:
            if not state.get("ready"):
                raise DeployFailed(
                    f"{endpoint}: {moved.version} stopped serving on host {state.get('host')} "
                    f"at {percent}% of the traffic"
                )
        requests = sum(int(s.get("requests") or 0) for s in states)
        if requests >= plan.min_requests or (over and requests):
            alarm = judged(plan, states, requests)
            if alarm is not None:
                key, value, threshold = alarm
                unit = " ms" if key == "max_p99_ms" else ""
                raise RolloutAlarm(
                    f"{endpoint}: alarm {key} went off at {percent}% of the traffic: "
                    f"{moved.version} measured {value:.4g}{unit} > {threshold:g}{unit} over "
                    f"its {requests} requests of the step; back to {_previous(moved)}",
                    details={
                        "alarm": key,
                        "measured": value,
                        "threshold": threshold,
                        "percent": percent,
                        "requests": requests,
                        "strategy": plan.strategy,
                    },
                )
        if over:
            return
        stop_if_superseded(superseded, endpoint, moved.version)
        time.sleep(min(POLL_S, max(end - time.monotonic(), 0)))


def judged(
    plan: Rollout, states: list[dict[str, Any]], requests: int
) -> tuple[str, float, float] | None:
    """The first alarm the step's windows set off: (key, measured, threshold), or None."""
    p99s = [float(s["p99_ms"]) for s in states if s.get("p99_ms") is not None]
    measured: dict[str, float | None] = {
        "max_error_rate": sum(int(s.get("errors") or 0) for s in states) / requests,
        "max_model_error_rate": sum(int(s.get("model_errors") or 0) for s in states) / requests,
        "max_p99_ms": max(p99s) if p99s else None,
    }
    for key, threshold in plan.alarms.items():
        value = measured[key]
        if value is not None and value > threshold:
            return key, value, threshold
    return None


def finish_rollout(deployer: Deployer, served: Served, timeout: float) -> Served:
    """Once the pointer is settled: wait until the backend serves the version alone (the
    hosts promote the candidate and stop the old version). The pointer is right whatever
    happens here; a host that is slow to follow catches up at its next look."""
    try:
        return deployer.apply(served.endpoint, served.version, timeout)
    except DeployFailed:
        return served
