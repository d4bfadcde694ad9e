"""A deploy's intent, kept in the registry with the pointer move it makes
(`registry.base.PendingDeploy`): the version to put back and the process that is to finish
the deploy. A deploy killed between moving the pointer and its health check leaves the
pointer pending on a version that may not serve; whoever touches the endpoint next (a command
through `modelci.deploy.recovery`, or the endpoint host) sees that the process is gone and
finishes the deploy: settles the pointer when the version serves, else puts the previous
version back with the reason as an event. Registry writes only: the health check is the
caller's."""

from __future__ import annotations

import socket
import time
from typing import Any

from modelci.errors import PointerConflict
from modelci.processes import owner, owner_alive
from modelci.registry.base import Event, PendingDeploy, Pointer, Registry

# How long a deploy's own process is trusted to finish it when it cannot be seen (another
# machine): its health check, smoke request and put-back, with room to spare (a SageMaker
# update that cannot be stopped half-way may take longer: a check then finds it under way).
INTENT_S = 900.0


def new_intent(previous: str | None, kind: str, *, gradual: bool = False) -> PendingDeploy:
    """The intent of a deploy this process is about to make: finished by it, or put back to
    `previous`; `gradual`: the traffic moves in steps (modelci.serve.split)."""
    return PendingDeploy(
        previous=previous,
        kind=kind,
        owner=owner(),
        expires=time.time() + INTENT_S,
        gradual=gradual,
    )


def orphaned(pointer: Pointer) -> bool:
    """Whether the pointer's deploy is pending and no process will finish it: its owner is
    gone (seen on this machine), or its time is up (an owner on another machine, which
    cannot be seen from here)."""
    pending = pointer.pending
    if pending is None:
        return False
    if not owner_alive(pending.owner):
        return True
    return pending.owner.get("host") != socket.gethostname() and pending.expires < time.time()


def owner_name(pending: PendingDeploy) -> str:
    """`host:pid` of the process that made the deploy."""
    return f"{pending.owner.get('host')}:{pending.owner.get('pid')}"


def interrupted(pointer: Pointer) -> str:
    """What happened to the pointer's orphaned deploy, for messages and events."""
    assert pointer.pending is not None
    return (
        f"the {pointer.pending.kind} of {pointer.version} by {owner_name(pointer.pending)} "
        "ended before its health check"
    )


def ended_event(
    kind: str,
    model: str,
    environment: str,
    version: str,
    previous: str | None,
    *,
    commit: str | None,
    actor: str | None,
    ci_url: str | None,
    **details: Any,
) -> Event:
    """The event of a deploy that did not end deployed (`deploy_failed`, `deploy_superseded`):
    from the previous version to `version`, with what ended it."""
    return Event(
        kind=kind,
        model=model,
        version=version,
        environment=environment,
        to_version=version,
        from_version=previous,
        commit=commit,
        actor=actor,
        ci_url=ci_url,
        details=details,
    )


def settle(
    registry: Registry,
    pointer: Pointer,
    *,
    actor: str | None,
    ci_url: str | None,
    recovered: bool,
) -> bool:
    """Mark the pointer's deploy finished, its version serving healthily; a deploy finished by
    another process than its own is recorded as a `deploy_completed` event. Whether this call
    settled it (False: the pointer moved, or another process settled it first)."""
    event = None
    if recovered:
        event = Event(
            kind="deploy_completed",
            model=pointer.model,
            version=pointer.version,
            environment=pointer.environment,
            to_version=pointer.version,
            from_version=pointer.pending.previous if pointer.pending else None,
            actor=actor,
            ci_url=ci_url,
            details={"reason": interrupted(pointer) + f"; {pointer.version} serves healthily"},
        )
    return registry.settle_pointer(
        pointer.model, pointer.environment, expected_generation=pointer.generation, event=event
    )


def put_back(
    registry: Registry,
    pointer: Pointer,
    previous: str | None,
    reason: str,
    *,
    commit: str | None,
    actor: str | None,
    ci_url: str | None,
    **details: Any,
) -> bool:
    """Undo the deploy that moved `pointer` to its version: in one transaction, record its
    `deploy_failed` with `reason` (and `details`: an alarm's) and point the environment back
    at `previous` (clear it when None) with an automatic `rollback` event. False, with
    nothing written, when the pointer moved since `pointer` was read."""
    failed = ended_event(
        "deploy_failed",
        pointer.model,
        pointer.environment,
        pointer.version,
        previous,
        commit=commit,
        actor=actor,
        ci_url=ci_url,
        reason=reason,
        **details,
    )
    back = Event(
        kind="rollback",
        model=pointer.model,
        actor=actor,
        ci_url=ci_url,
        details={"automatic": True, "reason": reason, **details},
    )
    try:
        if previous is None:
            registry.clear_pointer(
                pointer.model,
                pointer.environment,
                expected_generation=pointer.generation,
                event=back,
                first=failed,
            )
        else:
            registry.set_pointer(
                pointer.model,
                pointer.environment,
                previous,
                expected_generation=pointer.generation,
                event=back,
                first=failed,
            )
    except PointerConflict:
        return False
    return True
