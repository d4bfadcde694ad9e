"""What the SQL registry writes besides pointers' own columns: an event row, and the checks a
value passes before it is stored (the same refusals on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from modelci.errors import ConfigError
from modelci.registry import columns, tables
from modelci.registry.base import Event


def check_status(status: str) -> None:
    """Refuse a version status the schema does not know (ConfigError, key `status`)."""
    if status not in columns.VERSION_STATUSES:
        known = ", ".join(columns.VERSION_STATUSES)
        raise ConfigError(f"version status {status!r} is not one of {known}", key="status")


def insert_event(connection: Connection, event: Event, now: datetime) -> int:
    """Append `event` at `now` in the connection's transaction; its id."""
    e = tables.events
    result = connection.execute(
        e.insert().values(
            time=now,
            kind=event.kind,
            model=event.model,
            version=event.version,
            environment=event.environment,
            from_version=event.from_version,
            to_version=event.to_version,
            commit=event.commit,
            tag=event.tag,
            actor=event.actor,
            ci_url=event.ci_url,
            details=json_field("details", event.details),
        )
    )
    key = result.inserted_primary_key
    assert key is not None  # an INSERT always reports its key
    return int(key[0])


def json_field(name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    """`value` as a JSON column's document; a ConfigError naming `name` when it is not plain
    JSON (NaN included)."""
    # Checked here so that every backend refuses the same values (PostgreSQL refuses NaN, SQLite
    # would store it) with the same error.
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name} must be plain JSON: {error}", key=name) from error
    return dict(value) if value else {}
