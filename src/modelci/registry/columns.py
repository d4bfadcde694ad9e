"""The registry's schema as plain data, and how SQLite holds its values: one definition that
`tables.py` builds SQLAlchemy tables from and `quick.py` builds its SQL from, without importing
SQLAlchemy (train's fast path cannot afford it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

VERSION_STATUSES = ("training", "ready", "failed")

# SQLAlchemy's SQLite DATETIME storage format (naive UTC), given to it in tables.py and used by
# quick.py to write the same text, so that a column sorts as one.
SQLITE_TIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


@dataclass(frozen=True)
class Col:
    """One column: `kind` is string (with `length`), text, integer, json or time (UTC)."""

    name: str
    kind: str
    length: int | None = None
    nullable: bool = True
    primary_key: bool = False
    autoincrement: bool = False
    unique: bool = False
    references: str | None = None  # "table.column"


MODELS = (
    Col("name", "string", 64, primary_key=True),
    Col("created_at", "time", nullable=False),
)
VERSIONS = (
    # The autoincrement id orders versions by registration: "newest first" is `id DESC`.
    Col("id", "integer", primary_key=True, autoincrement=True),
    Col("version", "string", 128, nullable=False, unique=True),
    Col("model", "string", 64, nullable=False, references="models.name"),
    Col("commit", "string", 64, nullable=False),
    Col("status", "string", 16, nullable=False),
    Col("fingerprint", "string", 128),
    Col("artifact_uri", "text"),
    Col("artifact_sha256", "string", 128),
    Col("metrics", "json", nullable=False),
    Col("lock_hash", "string", 128),
    Col("actor", "text"),
    Col("ci_url", "text"),
    Col("details", "json", nullable=False),
    Col("created_at", "time", nullable=False),
    Col("updated_at", "time", nullable=False),
)
POINTERS = (
    Col("model", "string", 64, primary_key=True, references="models.name"),
    Col("environment", "string", 64, primary_key=True),
    Col("version", "string", 128, nullable=False, references="versions.version"),
    # Counts the pointer's changes; every compare-and-set compares it and adds one.
    Col("generation", "integer", nullable=False),
    Col("updated_at", "time", nullable=False),
    Col("actor", "text"),
    # The intent of the deploy that moved it, until that deploy ends (registry.base.PendingDeploy)
    Col("pending", "json"),
)
# A shadow: the candidate version an environment's endpoint mirrors a share of its requests
# to, never answering with it (modelci.serve.shadow); `event` is the id of the event that
# started it, which every pair of outputs recorded for it names.
SHADOWS = (
    Col("model", "string", 64, primary_key=True, references="models.name"),
    Col("environment", "string", 64, primary_key=True),
    Col("version", "string", 128, nullable=False, references="versions.version"),
    Col("percent", "integer", nullable=False),
    Col("event", "integer", nullable=False),
    Col("updated_at", "time", nullable=False),
    Col("actor", "text"),
)
EVENTS = (
    Col("id", "integer", primary_key=True, autoincrement=True),
    Col("time", "time", nullable=False),
    Col("kind", "string", 32, nullable=False),
    # No foreign keys: the log must accept an event about anything, and never lose one.
    Col("model", "string", 64, nullable=False),
    Col("version", "string", 128),
    Col("environment", "string", 64),
    Col("from_version", "string", 128),
    Col("to_version", "string", 128),
    Col("commit", "string", 64),
    Col("tag", "text"),
    Col("actor", "text"),
    Col("ci_url", "text"),
    Col("details", "json", nullable=False),
)


def names(columns: tuple[Col, ...], *, generated: bool = False) -> tuple[str, ...]:
    """The columns' names; without `generated`, an autoincrement id is left out."""
    return tuple(c.name for c in columns if generated or not c.autoincrement)


def to_sqlite_time(value: datetime) -> str:
    """A timestamp as SQLAlchemy stores it in SQLite (naive UTC, SQLITE_TIME_FORMAT)."""
    value = value.astimezone(UTC)
    return SQLITE_TIME_FORMAT % {
        "year": value.year,
        "month": value.month,
        "day": value.day,
        "hour": value.hour,
        "minute": value.minute,
        "second": value.second,
        "microsecond": value.microsecond,
    }


def from_sqlite_time(value: str) -> datetime:
    """A stored SQLite timestamp, UTC attached."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def to_json(value: Any) -> str:
    """A JSON column's text, as SQLAlchemy's engine serialises it (see sql.py)."""
    return json.dumps(value, allow_nan=False)


def to_sqlite(column: Col, value: Any) -> Any:
    """A value as the SQL registry stores it in SQLite."""
    if value is None:
        return None
    if column.kind == "json":
        return to_json(value)
    if column.kind == "time":
        return to_sqlite_time(value)
    return value


def from_sqlite(column: Col, value: Any) -> Any:
    """A value stored in SQLite as the SQL registry reads it back."""
    if column.kind == "json":
        return json.loads(value) if value else {}
    if column.kind == "time":
        return None if value is None else from_sqlite_time(value)
    return value
