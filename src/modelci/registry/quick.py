"""A read-only look at an SQLite registry through the standard library's sqlite3.

Importing SQLAlchemy costs about 0.3 s here, more than `modelci train` may add to a job.
`train` asks two questions before it decides to run a job (is this version trained? does a
version with this fingerprint exist?); this answers them with one SELECT each, so SQLAlchemy
can load while the job runs. It speaks only to a schema at the revision this modelci knows
(else it declines and the caller opens the real registry); it never writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from modelci.registry import sqlite_file
from modelci.registry.migrations import HEAD


class QuickLook:
    """One read-only connection to an SQLite registry file."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def version_status(self, version: str) -> str | None:
        row = self.connection.execute(
            "SELECT status FROM versions WHERE version = ?", (version,)).fetchone()
        return None if row is None else str(row[0])

    def ready_with_fingerprint(self, model: str, fingerprint: str) -> str | None:
        row = self.connection.execute(
            "SELECT version FROM versions WHERE model = ? AND fingerprint = ? AND "
            "status = 'ready' ORDER BY id DESC LIMIT 1", (model, fingerprint)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self.connection.close()


def quick_look(url: str, root: Path) -> QuickLook | None:
    """A QuickLook at the registry, or None when it is not an SQLite file at the known
    schema (a server registry, no registry yet, another revision)."""
    path = sqlite_file(url, root)
    if path is None or not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    if row is None or row[0] != HEAD:
        connection.close()
        return None
    return QuickLook(connection)
