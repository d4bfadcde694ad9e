"""The SQL registry's shadows: which candidate version each environment's endpoint mirrors a
share of its requests to. Starting and ending one is one transaction with its event, so the
log and the table never disagree. Mixed into SqlRegistry."""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select

from modelci.registry import tables
from modelci.registry.base import Event, Shadow
from modelci.registry.rows import read_for_change
from modelci.registry.writes import insert_event

if TYPE_CHECKING:
    from sqlalchemy import Row

    _Row = Row[*tuple[Any, ...]]


class SqlShadows:
    """Registry reads and writes of the `shadows` table."""

    def _reading(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # SqlRegistry's

    def _writing(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # SqlRegistry's

    def _insert(self, table: Table) -> Any:
        raise NotImplementedError  # SqlRegistry's

    def shadows(self, model: str | None = None) -> list[Shadow]:
        """Every shadow, of one model or of all, by model then environment."""
        s = tables.shadows
        query = select(s).order_by(s.c.model, s.c.environment)
        if model is not None:
            query = query.where(s.c.model == model)
        with self._reading() as connection:
            return [_shadow_of(row) for row in connection.execute(query)]

    def set_shadow(
        self, model: str, environment: str, version: str, percent: int, *, event: Event
    ) -> Shadow:
        """Start or replace the environment's shadow with its event, in one transaction. An
        unknown version, or one of another model, is a ConfigError."""
        s = tables.shadows
        now = datetime.now(UTC)
        with self._writing() as connection:
            read_for_change(connection, model, environment, version)  # the version's checks
            logged = dataclasses.replace(
                event, model=model, environment=environment, version=version
            )
            event_id = insert_event(connection, logged, now)
            values = {
                "version": version,
                "percent": percent,
                "event": event_id,
                "updated_at": now,
                "actor": event.actor,
            }
            connection.execute(
                self._insert(s)
                .values(model=model, environment=environment, **values)
                .on_conflict_do_update(index_elements=["model", "environment"], set_=values)
            )
        return Shadow(model, environment, version, percent, event_id, now, event.actor)

    def clear_shadow(self, model: str, environment: str, *, event: Event) -> Shadow | None:
        """End the environment's shadow with its event, in one transaction; the shadow ended,
        or None when there was none (nothing is written then)."""
        s = tables.shadows
        ours = (s.c.model == model, s.c.environment == environment)
        with self._writing() as connection:
            row = connection.execute(select(s).where(*ours)).one_or_none()
            if row is None:
                return None
            ended = _shadow_of(row)
            logged = dataclasses.replace(
                event,
                model=model,
                environment=environment,
                version=ended.version,
                details={**event.details, "shadow": ended.event},
            )
            insert_event(connection, logged, datetime.now(UTC))
            connection.execute(s.delete().where(*ours))
        return ended


def _shadow_of(row: _Row) -> Shadow:
    return Shadow(
        model=row.model,
        environment=row.environment,
        version=row.version,
        percent=int(row.percent),
        event=int(row.event),
        updated_at=row.updated_at,
        actor=row.actor,
    )
