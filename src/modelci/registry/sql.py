"""The SQL registry: SQLite (the embedded default) and PostgreSQL, through SQLAlchemy Core (the
engine and the schema's migration in `engine`, rows as records in `rows`).

Every pointer change is one write transaction that reads the pointer, compares its generation,
writes the new one and appends the event: on SQLite the transaction starts with
`BEGIN IMMEDIATE`, so writers queue on the database lock instead of failing half-way; on
PostgreSQL the `UPDATE ... WHERE generation = expected` waits for a concurrent writer's row lock
and then no longer matches, so the loser sees a conflict and nothing is lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, Table, select, update

from modelci.errors import ConfigError, VersionExists
from modelci.registry import tables
from modelci.registry.base import (
    UPDATABLE,
    Event,
    PendingDeploy,
    Pointer,
    Registry,
    VersionRecord,
)
from modelci.registry.engine import (
    create,
    engine_url,
    migrate,
    read_only_url,
    schema_revision,
    sqlite_database,
    translated,
    writable,
)
from modelci.registry.migrations import HEAD
from modelci.registry.reads import SqlReads
from modelci.registry.rows import (
    conflict,
    event_of,
    pointer_of,
    read_for_change,
    read_pointer,
    version_of,
)
from modelci.registry.shadows import SqlShadows
from modelci.registry.writes import check_status, insert_event, json_field

if TYPE_CHECKING:
    _Row = Row[*tuple[Any, ...]]  # a row of any columns (Row is variadic in SQLAlchemy 2.1)


class SqlRegistry(SqlReads, SqlShadows, Registry):
    """The registry in a SQL database: `sqlite:///path` or `postgresql://user@host/db`."""

    def __init__(self, url: str, *, root: Path) -> None:
        self.url = engine_url(url, root)
        self.display_url = self.url.render_as_string(hide_password=True)
        # the SQLite file, named by errors about it; one this process may not write is opened
        # read-only, so that reads (`status`, `history`) still work and writes fail clearly
        self.database = sqlite_database(self.url)
        opened = self.url
        if self.database is not None and self.database.exists() and not writable(self.database):
            opened = read_only_url(self.url, self.database)
        self._engine = create(opened)
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"SqlRegistry({self.display_url!r})"

    # -- schema ---------------------------------------------------------------------------

    def upgrade(self) -> str:
        """Apply every pending migration; return the schema revision now in force."""
        with translated(self.display_url, self.url.password, self.database):
            revision = migrate(self._engine, self.display_url)
        self._schema_ready = True
        return revision

    def _ensure_schema(self) -> None:
        # Commands open the registry often: one plain query tells that the schema is current,
        # and alembic (slow to import) is loaded only when it is not.
        if self._schema_ready:
            return
        if schema_revision(self._engine) != HEAD:
            migrate(self._engine, self.display_url)
        self._schema_ready = True

    # -- versions -------------------------------------------------------------------------

    def add_version(self, record: VersionRecord) -> VersionRecord:
        """Insert a version (its model row too, when new); an existing name is VersionExists."""
        check_status(record.status)
        now = _now()
        v = tables.versions
        with self._writing() as connection:
            self._add_model(connection, record.model, now)
            inserted = connection.execute(
                self._insert(v)
                .values(
                    version=record.version,
                    model=record.model,
                    commit=record.commit,
                    status=record.status,
                    fingerprint=record.fingerprint,
                    artifact_uri=record.artifact_uri,
                    artifact_sha256=record.artifact_sha256,
                    metrics=json_field("metrics", record.metrics),
                    lock_hash=record.lock_hash,
                    actor=record.actor,
                    ci_url=record.ci_url,
                    details=json_field("details", record.details),
                    created_at=record.created_at or now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["version"])
                # RETURNING, not rowcount: psycopg's rowcount counts differently with RETURNING.
                .returning(v.c.id)
            )
            if inserted.first() is None:
                raise VersionExists(f"version {record.version} is already in the registry")
            row = connection.execute(select(v).where(v.c.version == record.version)).one()
        return version_of(row)

    def update_version(self, version: str, **fields: Any) -> VersionRecord:
        """Change fields of a version (status, artifact, metrics, details...).

        `metrics` and `details` are replaced, not merged. An unknown version is a ConfigError.
        """
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise TypeError(f"update_version() cannot change {', '.join(sorted(unknown))}")
        if "status" in fields:
            check_status(fields["status"])
        values = dict(fields)
        for name in ("metrics", "details"):
            if name in values:
                values[name] = json_field(name, values[name])
        v = tables.versions
        with self._writing() as connection:
            changed = connection.execute(
                update(v).where(v.c.version == version).values(**values, updated_at=_now())
            )
            if changed.rowcount == 0:
                raise ConfigError(f"no version {version} in the registry")
            row = connection.execute(select(v).where(v.c.version == version)).one()
        return version_of(row)

    def get_version(self, version: str) -> VersionRecord | None:
        """The version of that name, or None."""
        v = tables.versions
        with self._reading() as connection:
            row = connection.execute(select(v).where(v.c.version == version)).one_or_none()
        return None if row is None else version_of(row)

    def list_versions(self, model: str | None = None) -> list[VersionRecord]:
        """Versions, newest first, of one model or of all."""
        v = tables.versions
        query = select(v).order_by(v.c.id.desc())
        if model is not None:
            query = query.where(v.c.model == model)
        with self._reading() as connection:
            return [version_of(row) for row in connection.execute(query)]

    def find_by_fingerprint(self, model: str, fingerprint: str) -> VersionRecord | None:
        """The newest ready version of the model with this fingerprint, or None."""
        v = tables.versions
        query = (
            select(v)
            .where(v.c.model == model, v.c.fingerprint == fingerprint, v.c.status == "ready")
            .order_by(v.c.id.desc())
            .limit(1)
        )
        with self._reading() as connection:
            row = connection.execute(query).one_or_none()
        return None if row is None else version_of(row)

    def models(self) -> list[str]:
        """Names of every model the registry knows, sorted."""
        m = tables.models
        with self._reading() as connection:
            return list(connection.execute(select(m.c.name).order_by(m.c.name)).scalars())

    # -- pointers -------------------------------------------------------------------------

    def get_pointer(self, model: str, environment: str) -> Pointer | None:
        """The pointer of one environment of a model, or None when never set."""
        with self._reading() as connection:
            row = read_pointer(connection, model, environment)
        return None if row is None else pointer_of(row)

    def pointers(self, model: str | None = None) -> list[Pointer]:
        """Every pointer, of one model or of all, by model then environment."""
        p = tables.pointers
        query = select(p).order_by(p.c.model, p.c.environment)
        if model is not None:
            query = query.where(p.c.model == model)
        with self._reading() as connection:
            return [pointer_of(row) for row in connection.execute(query)]

    def set_pointer(
        self,
        model: str,
        environment: str,
        version: str,
        *,
        expected_generation: int | None,
        event: Event,
        pending: PendingDeploy | None = None,
        first: Event | None = None,
    ) -> Pointer:
        """Compare-and-set: point the environment at `version` if its generation is still
        `expected_generation` (None: the pointer must not exist yet), with the deploy's intent
        `pending`, and append `first` (when given) and `event` in the same transaction. Raises
        PointerConflict, changing nothing, when another writer won.

        The registry fills the event's model, environment, from_version and to_version (and
        its version, when unset) from the change itself. An unknown version, or one of another
        model, is a ConfigError.
        """
        p = tables.pointers
        now = _now()
        with self._writing() as connection:
            current = read_for_change(connection, model, environment, version)
            if (current.generation if current is not None else None) != expected_generation:
                raise conflict(model, environment, expected_generation, current)
            logged = dataclasses.replace(
                event,
                model=model,
                environment=environment,
                version=event.version or version,
                from_version=current.version if current is not None else None,
                to_version=version,
            )
            # The event goes first: on PostgreSQL the pointer's row lock is then held for one
            # round trip (write, commit), not two, which is what concurrent writers wait on.
            # A lost race rolls the event back with everything else.
            if first is not None:
                insert_event(connection, first, now)
            insert_event(connection, logged, now)
            intent = None if pending is None else pending.to_json()
            if expected_generation is None:
                written = connection.execute(
                    self._insert(p)
                    .values(
                        model=model,
                        environment=environment,
                        version=version,
                        generation=1,
                        updated_at=now,
                        actor=event.actor,
                        pending=intent,
                    )
                    .on_conflict_do_nothing(index_elements=["model", "environment"])
                    .returning(p.c.generation)
                )
                written_rows = len(written.all())
            else:
                written = connection.execute(
                    update(p)
                    .where(
                        p.c.model == model,
                        p.c.environment == environment,
                        p.c.generation == expected_generation,
                    )
                    .values(
                        version=version,
                        generation=expected_generation + 1,
                        updated_at=now,
                        actor=event.actor,
                        pending=intent,
                    )
                )
                written_rows = written.rowcount
            if written_rows != 1:
                # Only PostgreSQL gets here: a concurrent writer committed between our read and
                # our write. This statement sees its commit, so the message names the winner.
                winner = read_pointer(connection, model, environment)
                raise conflict(model, environment, expected_generation, winner)
        return Pointer(
            model=model,
            environment=environment,
            version=version,
            generation=(expected_generation or 0) + 1,
            updated_at=now,
            actor=event.actor,
            pending=pending,
        )

    def clear_pointer(
        self,
        model: str,
        environment: str,
        *,
        expected_generation: int,
        event: Event,
        first: Event | None = None,
    ) -> None:
        """Compare-and-delete a pointer, with its events, in one transaction."""
        p = tables.pointers
        now = _now()
        with self._writing() as connection:
            current = read_pointer(connection, model, environment)
            if current is None or current.generation != expected_generation:
                raise conflict(model, environment, expected_generation, current)
            logged = dataclasses.replace(
                event,
                model=model,
                environment=environment,
                from_version=current.version,
                to_version=None,
            )
            if first is not None:
                insert_event(connection, first, now)
            insert_event(connection, logged, now)
            deleted = connection.execute(
                p.delete().where(
                    p.c.model == model,
                    p.c.environment == environment,
                    p.c.generation == expected_generation,
                )
            )
            if deleted.rowcount != 1:
                winner = read_pointer(connection, model, environment)
                raise conflict(model, environment, expected_generation, winner)

    def settle_pointer(
        self, model: str, environment: str, *, expected_generation: int, event: Event | None
    ) -> bool:
        """Clear the pointer's intent if it is still at `expected_generation` and pending, with
        `event`, in one transaction; whether this call did."""
        p = tables.pointers
        with self._writing() as connection:
            current = read_pointer(connection, model, environment)
            if (
                current is None
                or current.generation != expected_generation
                or PendingDeploy.from_json(current.pending) is None
            ):
                return False
            ours = (p.c.model == model, p.c.environment == environment)
            settled = connection.execute(
                update(p).where(*ours, p.c.generation == expected_generation).values(pending=None)
            )
            if settled.rowcount == 1 and event is not None:
                insert_event(connection, event, _now())
        return settled.rowcount == 1

    # -- events ---------------------------------------------------------------------------

    def append_event(self, event: Event) -> Event:
        """Append an event; return it with its id and time."""
        now = _now()
        with self._writing() as connection:
            event_id = insert_event(connection, event, now)
        return dataclasses.replace(event, id=event_id, time=now)

    def events(
        self,
        model: str | None = None,
        *,
        kind: str | None = None,
        limit: int | None = None,
        environment: str | None = None,
        actor: str | None = None,
        kinds: frozenset[str] | None = None,
        until: datetime | None = None,
    ) -> list[Event]:
        """Events, newest first; each filter given narrows them."""
        e = tables.events
        query = select(e).order_by(e.c.id.desc())
        equal = ((e.c.model, model), (e.c.kind, kind), (e.c.environment, environment))
        for column, value in (*equal, (e.c.actor, actor)):
            if value is not None:
                query = query.where(column == value)
        if kinds is not None:
            query = query.where(e.c.kind.in_(sorted(kinds)))
        if until is not None:
            query = query.where(e.c.time <= until)
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as connection:
            return [event_of(row) for row in connection.execute(query)]

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with translated(self.display_url, self.url.password, self.database):
            self._ensure_schema()
            with self._engine.connect() as connection:
                if connection.dialect.name == "postgresql":
                    # Each read is one statement: no BEGIN/ROLLBACK round trips around it.
                    connection.execution_options(isolation_level="AUTOCOMMIT")
                yield connection

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with translated(self.display_url, self.url.password, self.database):
            self._ensure_schema()
            with self._engine.connect() as connection:
                connection.execution_options(modelci_write=True)
                with connection.begin():
                    yield connection

    def _insert(self, table: Table) -> Any:
        # Both dialects' INSERT support ON CONFLICT DO NOTHING, which the generic one lacks.
        if self._engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            return postgresql_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def _add_model(self, connection: Connection, model: str, now: datetime) -> None:
        connection.execute(
            self._insert(tables.models)
            .values(name=model, created_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )


def _now() -> datetime:
    return datetime.now(UTC)
