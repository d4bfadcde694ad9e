"""The registry's tables: models, versions, environment pointers, shadows and the append-only
event log.

Built from the plain column lists of `columns.py` (which quick.py reads too). The migrations in
`migrations/versions/` create exactly this schema; a test compares the two.
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

from modelci.registry import columns
from modelci.registry.columns import SQLITE_TIME_FORMAT, VERSION_STATUSES, Col

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


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones: the value is stored as naive UTC and comes back with UTC attached.
    PostgreSQL stores `timestamptz` and returns it in the session's zone: it comes back as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import DATETIME

            # the storage format quick.py writes too
            stored = DATETIME(storage_format=SQLITE_TIME_FORMAT)  # type: ignore[no-untyped-call]
            return dialect.type_descriptor(stored)
        return dialect.type_descriptor(self.impl)

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


def _column(column: Col) -> Column[Any]:
    kinds: dict[str, Any] = {
        "string": lambda: String(column.length),
        "text": lambda: Text,
        "integer": lambda: Integer,
        "json": json_type,
        "time": UtcDateTime,
    }
    foreign = [ForeignKey(column.references)] if column.references else []
    extra: dict[str, Any] = {"autoincrement": True} if column.autoincrement else {}
    if column.unique:
        extra["unique"] = True
    return Column(
        column.name,
        kinds[column.kind](),
        *foreign,
        primary_key=column.primary_key,
        nullable=column.nullable and not column.primary_key,
        **extra,
    )


def _table(name: str, columns: tuple[Col, ...], *constraints: Any) -> Table:
    return Table(name, metadata, *(_column(c) for c in columns), *constraints)


models = _table("models", columns.MODELS)
versions = _table(
    "versions",
    columns.VERSIONS,
    CheckConstraint(
        "status IN (" + ", ".join(f"'{s}'" for s in VERSION_STATUSES) + ")", name="status"
    ),
    Index(None, "model", "id"),
    Index(None, "model", "fingerprint"),
)
pointers = _table("pointers", columns.POINTERS)
shadows = _table("shadows", columns.SHADOWS)
events = _table(
    "events",
    columns.EVENTS,
    Index(None, "model", "id"),
    Index(None, "kind", "id"),
)
