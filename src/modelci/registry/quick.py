"""An SQLite registry through the standard library's sqlite3, for `train`'s quick paths.

Importing SQLAlchemy costs 0.2-0.4 s here, more than `modelci train` may add to a job and half
of what a fingerprint-cache hit may take. Before it decides to run a job, `train` asks whether
the version is trained and whether a version with its fingerprint exists; a hit then records
one version on the artifact of another. This module does exactly that with plain SQL: reads
on a read-only connection, and the one write (a reused version and its event) in one
`BEGIN IMMEDIATE` transaction, with the columns and encodings of `columns.py` that the SQL
registry's tables are built from (a test reads the values back through it). It speaks only
to a schema at the revision this modelci knows, else it declines and the caller opens the
real registry.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from modelci.registry import columns, sqlite_file
from modelci.registry.base import Event, VersionRecord
from modelci.registry.migrations import HEAD

_BUSY_TIMEOUT_S = 30.0  # as the SQL registry waits for the write lock
_VERSIONS = {c.name: c for c in columns.VERSIONS if not c.autoincrement}
_EVENTS = {c.name: c for c in columns.EVENTS if not c.autoincrement}
_MODEL_CREATED = next(c for c in columns.MODELS if c.name == "created_at")


class QuickLook:
    """One read-only connection to an SQLite registry file."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def version_status(self, version: str) -> str | None:
        row = self.connection.execute(
            "SELECT status FROM versions WHERE version = ?", (version,)
        ).fetchone()
        return None if row is None else str(row[0])

    def version(self, version: str) -> VersionRecord | None:
        """The whole record of that version, or None."""
        names = ", ".join(f'"{c}"' for c in _VERSIONS)
        row = self.connection.execute(
            f"SELECT {names} FROM versions WHERE version = ?", (version,)
        ).fetchone()
        if row is None:
            return None
        return VersionRecord(
            **{
                name: columns.from_sqlite(column, value)
                for (name, column), value in zip(_VERSIONS.items(), row, strict=True)
            }
        )

    def ready_with_fingerprint(self, model: str, fingerprint: str) -> str | None:
        row = self.connection.execute(
            "SELECT version FROM versions WHERE model = ? AND fingerprint = ? AND "
            "status = 'ready' ORDER BY id DESC LIMIT 1",
            (model, fingerprint),
        ).fetchone()
        return None if row is None else str(row[0])

    def deployed_commits(self, environment: str) -> dict[str, str]:
        """Each model's commit of its newest deploy event to `environment` that names one
        (the SQL registry's `deployed_commits`, in one query)."""
        rows = self.connection.execute(
            'SELECT model, "commit" FROM events WHERE id IN (SELECT max(id) FROM events '
            "WHERE kind = 'deploy' AND environment = ? AND \"commit\" IS NOT NULL "
            "GROUP BY model)",
            (environment,),
        )
        return {str(model): str(commit) for model, commit in rows}

    def unfinished(self) -> bool:
        """Whether a killed command may have left something to finish: a version recorded
        `training`, or a pointer carrying a deploy's intent (`pending`, JSON null when none)."""
        row = self.connection.execute(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE status = 'training') OR EXISTS "
            "(SELECT 1 FROM pointers WHERE pending IS NOT NULL AND pending != 'null')"
        ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self.connection.close()


def quick_look(url: str, root: Path) -> QuickLook | None:
    """A QuickLook at the registry, or None when it is not an SQLite file at the known
    schema (a server registry, no registry yet, another revision)."""
    connection = _connect(url, root, mode="ro")
    return None if connection is None else QuickLook(connection)


def add_reused_version(
    url: str, root: Path, record: VersionRecord, event: Event, source: VersionRecord
) -> VersionRecord | None:
    """Record `record` (a version on the artifact of `source`) and its event in one write
    transaction; the record as stored, or None (nothing written) when the registry is not an
    SQLite file at the known schema, the version already exists, or `source` is no longer
    ready on the same artifact."""
    connection = _connect(url, root, mode="rw")
    if connection is None:
        return None
    now = datetime.now(UTC)
    stored = dataclasses.replace(record, created_at=now, updated_at=now)
    try:
        connection.execute("BEGIN IMMEDIATE")
        found = connection.execute(
            "SELECT status, artifact_sha256 FROM versions WHERE version = ?", (source.version,)
        ).fetchone()
        if found != ("ready", source.artifact_sha256):
            connection.execute("ROLLBACK")
            return None
        connection.execute(
            "INSERT INTO models (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (stored.model, columns.to_sqlite(_MODEL_CREATED, now)),
        )
        inserted = connection.execute(
            _insert("versions", _VERSIONS) + " ON CONFLICT (version) DO NOTHING",
            [columns.to_sqlite(c, getattr(stored, name)) for name, c in _VERSIONS.items()],
        )
        if inserted.rowcount != 1:
            connection.execute("ROLLBACK")
            return None
        connection.execute(
            _insert("events", _EVENTS),
            [
                columns.to_sqlite(c, now if name == "time" else getattr(event, name))
                for name, c in _EVENTS.items()
            ],
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()
    return stored


def _connect(url: str, root: Path, *, mode: str) -> sqlite3.Connection | None:
    path = sqlite_file(url, root)
    if path is None or not path.is_file():
        return None
    try:
        connection = sqlite3.connect(
            f"file:{path}?mode={mode}", uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None
        )
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    if row is None or row[0] != HEAD:
        connection.close()
        return None
    if mode != "ro":
        connection.execute("PRAGMA foreign_keys = ON")
    return connection


def _insert(table: str, names: dict[str, columns.Col]) -> str:
    quoted = ", ".join(f'"{c}"' for c in names)
    return f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(names))})"
