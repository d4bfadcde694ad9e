"""Reading the SQL registry's pointer rows, rows as the registry's records, and the conflict a
lost compare-and-set reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, select

from modelci.errors import ConfigError, PointerConflict
from modelci.registry import tables
from modelci.registry.base import Event, PendingDeploy, Pointer, VersionRecord

if TYPE_CHECKING:
    from sqlalchemy import Row

    _Row = Row[*tuple[Any, ...]]  # a row of any columns (Row is variadic in SQLAlchemy 2.1)


def read_pointer(connection: Connection, model: str, environment: str) -> _Row | None:
    p = tables.pointers
    query = select(p).where(p.c.model == model, p.c.environment == environment)
    return connection.execute(query).one_or_none()


def read_for_change(
    connection: Connection, model: str, environment: str, version: str
) -> _Row | None:
    """The pointer as it is now, or None; checks in the same query that `version` exists
    and belongs to `model` (a ConfigError otherwise)."""
    v, p = tables.versions, tables.pointers
    query = (
        select(v.c.model.label("owner"), p.c.version, p.c.generation, p.c.actor)
        .select_from(v.outerjoin(p, and_(p.c.model == model, p.c.environment == environment)))
        .where(v.c.version == version)
    )
    row = connection.execute(query).one_or_none()
    if row is None:
        raise ConfigError(f"no version {version} in the registry")
    if row.owner != model:
        raise ConfigError(f"version {version} belongs to model {row.owner}, not {model}")
    return row if row.generation is not None else None


def conflict(
    model: str, environment: str, expected: int | None, found: _Row | None
) -> PointerConflict:
    wanted = "no pointer yet" if expected is None else f"generation {expected}"
    if found is None:
        seen = "no pointer"
    else:
        by = f", set by {found.actor}" if found.actor else ""
        seen = f"generation {found.generation} ({found.version}{by})"
    return PointerConflict(
        f"{environment} pointer of {model} was changed by another writer: expected {wanted}, "
        f"found {seen}; read it again and retry"
    )


def pointer_of(row: _Row) -> Pointer:
    return Pointer(
        model=row.model,
        environment=row.environment,
        version=row.version,
        generation=row.generation,
        updated_at=row.updated_at,
        actor=row.actor,
        pending=PendingDeploy.from_json(row.pending),
    )


def event_of(row: _Row) -> Event:
    return Event(
        id=row.id,
        time=row.time,
        kind=row.kind,
        model=row.model,
        version=row.version,
        environment=row.environment,
        from_version=row.from_version,
        to_version=row.to_version,
        commit=row.commit,
        tag=row.tag,
        actor=row.actor,
        ci_url=row.ci_url,
        details=_mapping(row.details),
    )


def version_of(row: _Row) -> VersionRecord:
    """A version row as a VersionRecord."""
    return VersionRecord(
        version=row.version,
        model=row.model,
        commit=row.commit,
        status=row.status,
        fingerprint=row.fingerprint,
        artifact_uri=row.artifact_uri,
        artifact_sha256=row.artifact_sha256,
        metrics=_mapping(row.metrics),
        lock_hash=row.lock_hash,
        actor=row.actor,
        ci_url=row.ci_url,
        details=_mapping(row.details),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if value else {}
