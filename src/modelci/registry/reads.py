"""The SQL registry's aggregating reads (what each environment last deployed, overviews for the
dashboard and reports): one query each where a scan would load every version or every event.
Mixed into SqlRegistry."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from modelci.registry import tables
from modelci.registry.base import POINTER_MOVES, VersionRecord
from modelci.registry.rows import version_of


class SqlReads:
    """Registry reads that aggregate in the database."""

    def _reading(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # SqlRegistry's

    def last_deployed_commit(self, environment: str, model: str | None = None) -> str | None:
        """The commit of the newest deploy event to `environment` (of one model, or of any)
        that names a commit; None when there is none."""
        e = tables.events
        query = (
            select(e.c.commit)
            .where(e.c.kind == "deploy", e.c.environment == environment, e.c.commit.is_not(None))
            .order_by(e.c.id.desc())
            .limit(1)
        )
        if model is not None:
            query = query.where(e.c.model == model)
        with self._reading() as connection:
            commit: str | None = connection.execute(query).scalar()
        return commit

    def deployed_commits(self, environment: str) -> dict[str, str]:
        """Each model's commit of its newest deploy event to `environment` that names one:
        one grouped query, however many models."""
        e = tables.events
        newest = (
            select(func.max(e.c.id))
            .where(e.c.kind == "deploy", e.c.environment == environment, e.c.commit.is_not(None))
            .group_by(e.c.model)
        )
        query = select(e.c.model, e.c.commit).where(e.c.id.in_(newest))
        with self._reading() as connection:
            return {row.model: row.commit for row in connection.execute(query)}

    def newest_versions(self) -> dict[str, VersionRecord]:
        """Each model's newest version, by model."""
        v = tables.versions
        newest = select(func.max(v.c.id)).group_by(v.c.model).scalar_subquery()
        with self._reading() as connection:
            rows = connection.execute(select(v).where(v.c.id.in_(newest)))
            return {record.model: record for record in map(version_of, rows)}

    def versions_named(self, names: Collection[str]) -> dict[str, VersionRecord]:
        """The versions of those names that exist, by name."""
        v = tables.versions
        found: dict[str, VersionRecord] = {}
        with self._reading() as connection:
            for chunk in _chunks(sorted(set(names)), 500):
                rows = connection.execute(select(v).where(v.c.version.in_(chunk)))
                found.update((r.version, r) for r in map(version_of, rows))
        return found

    def served_at(self, moment: datetime) -> dict[tuple[str, str], str | None]:
        """What each environment of each model pointed to at `moment` (see Registry)."""
        e = tables.events
        newest = (
            select(func.max(e.c.id))
            .where(
                e.c.kind.in_(sorted(POINTER_MOVES)),
                e.c.time <= moment,
                e.c.environment.is_not(None),
            )
            .group_by(e.c.model, e.c.environment)
            .scalar_subquery()
        )
        query = select(e.c.model, e.c.environment, e.c.to_version).where(e.c.id.in_(newest))
        with self._reading() as connection:
            return {(row[0], row[1]): row[2] for row in connection.execute(query)}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
