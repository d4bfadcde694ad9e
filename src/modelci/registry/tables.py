"""The registry's tables: models, versions, environment pointers and the append-only event log.

The migrations in `migrations/versions/` create exactly this schema; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

# Named constraints, so that later migrations can alter them by name on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

VERSION_STATUSES = ("training", "ready", "failed")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones: the value is stored as naive UTC and comes back with UTC attached.
    PostgreSQL stores `timestamptz` and returns it in the session's zone: it comes back as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time is ambiguous; refusing it keeps every stored time comparable.
            raise ValueError(f"registry timestamps must be timezone-aware, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JsonDocument(TypeDecorator[Any]):
    """JSON, stored as `jsonb` on PostgreSQL (indexable, compact) and as text on SQLite. The
    PostgreSQL type is looked up only on PostgreSQL: its dialect costs an SQLite registry
    ~35 ms of import."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


def json_type() -> TypeEngine[Any]:
    """The column type of JSON documents."""
    return JsonDocument()


models = Table(
    "models",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    # The autoincrement id orders versions by registration: "newest first" is `id DESC`.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(128), nullable=False, unique=True),
    Column("model", String(64), ForeignKey("models.name"), nullable=False),
    Column("commit", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("fingerprint", String(128)),
    Column("artifact_uri", Text),
    Column("artifact_sha256", String(128)),
    Column("metrics", json_type(), nullable=False),
    Column("lock_hash", String(128)),
    Column("actor", Text),
    Column("ci_url", Text),
    Column("details", json_type(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint(
        "status IN ('training', 'ready', 'failed')",
        name="status",
    ),
    Index(None, "model", "id"),
    Index(None, "model", "fingerprint"),
)

pointers = Table(
    "pointers",
    metadata,
    Column("model", String(64), ForeignKey("models.name"), primary_key=True),
    Column("environment", String(64), primary_key=True),
    Column("version", String(128), ForeignKey("versions.version"), nullable=False),
    # Counts the pointer's changes; every compare-and-set compares it and adds one.
    Column("generation", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("actor", Text),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    # No foreign keys: the log must accept an event about anything, and never lose one.
    Column("model", String(64), nullable=False),
    Column("version", String(128)),
    Column("environment", String(64)),
    Column("from_version", String(128)),
    Column("to_version", String(128)),
    Column("commit", String(64)),
    Column("tag", Text),
    Column("actor", Text),
    Column("ci_url", Text),
    Column("details", json_type(), nullable=False),
    Index(None, "model", "id"),
    Index(None, "kind", "id"),
)
