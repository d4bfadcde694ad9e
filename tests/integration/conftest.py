"""Servers the integration tests need, started once per session: PostgreSQL for the registry."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelci.registry import Registry, open_registry
from tests.support.postgres import (
    PostgresUnavailable,
    create_database,
    find_postgres_bin,
    temporary_postgres,
    unavailable,
)

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole session; its URL names an empty database.

    Without the server binaries the tests that need it are skipped, except in CI (where `CI`
    is set): there they fail.
    """
    try:
        find_postgres_bin()
    except PostgresUnavailable as error:
        unavailable(str(error))
    with temporary_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty registry: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite:///.modelci/registry.db"  # relative: inside `repo_root`, i.e. tmp_path
    server_url: str = request.getfixturevalue("postgres_url")
    return create_database(server_url, f"registry_{next(_databases)}")


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    """The repository root a registry URL is relative to."""
    return tmp_path


@pytest.fixture
def registry(registry_url: str, repo_root: Path) -> Iterator[Registry]:
    """A fresh registry on each backend, closed after the test."""
    with open_registry(registry_url, repo_root) as opened:
        yield opened
