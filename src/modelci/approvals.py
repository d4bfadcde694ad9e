"""Approvals: an environment with `approval = true` takes only versions that someone other
than their author approved for it (`modelci approve VERSION --env ENV`), as SageMaker's model
registry gates deployment on `ModelApprovalStatus`.

An approval is an `approved` event in the registry's log (actor, CI run, time): the log is the
one record of it, and nothing else caches it.
"""

from __future__ import annotations

from modelci.errors import ConfigError
from modelci.registry.base import Event, Registry, VersionRecord

APPROVED = "approved"


def approvers(registry: Registry, record: VersionRecord, environment: str) -> list[str]:
    """Who approved `record` for `environment`, its own author left out, oldest first."""
    found = [
        event.actor
        for event in registry.events(record.model, kind=APPROVED)
        if event.version == record.version
        and event.environment == environment
        and event.actor
        and event.actor != record.actor
    ]
    return list(dict.fromkeys(reversed(found)))


def missing_approval(registry: Registry, record: VersionRecord, environment: str) -> str | None:
    """Why `record` may not go to `environment`, which requires approval; None when approved."""
    if approvers(registry, record, environment):
        return None
    return (
        f"{environment} requires approval: {record.version} has none from anyone other than its "
        f"author ({record.actor or 'unknown'}); run `modelci approve {record.version} --env "
        f"{environment}` as another person"
    )


def approve(
    registry: Registry,
    record: VersionRecord,
    environment: str,
    *,
    actor: str,
    ci_url: str | None,
    note: str | None = None,
) -> Event:
    """Record `actor`'s approval of `record` for `environment`; refused to the author."""
    if record.actor is not None and actor == record.actor:
        raise ConfigError(
            f"{record.version} was built by {actor}: its approval must come from someone else",
            key="VERSION",
        )
    return registry.append_event(
        Event(
            kind=APPROVED,
            model=record.model,
            version=record.version,
            environment=environment,
            commit=record.commit,
            actor=actor,
            ci_url=ci_url,
            details={"note": note} if note else {},
        )
    )
