"""`modelci registry`: manage the registry itself."""

from __future__ import annotations

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError
from modelci.workspace import Workspace


@click.group()
def registry() -> None:
    """Manage the registry (SQLite by default, PostgreSQL for a team)."""


@registry.command()
@json_option
@click.pass_obj
def upgrade(workspace: Workspace, json_mode: bool) -> None:
    """Apply every pending schema migration (also done on first use)."""
    output = Output(json_mode)
    with workspace.registry() as opened:
        revision = opened.upgrade()
    output.result(
        {"revision": revision},
        lambda console: console.print(f"registry schema at revision {revision}"),
    )


@registry.command()
@click.option(
    "--force",
    is_flag=True,
    help="Start an empty registry where one was made and is now missing or empty.",
)
@json_option
@click.pass_obj
def init(workspace: Workspace, force: bool, json_mode: bool) -> None:
    """Create the registry (a new SQLite file is otherwise made only on first use, never over
    one that was lost)."""
    from modelci.registry import sqlite_file
    from modelci.registry.presence import check_registry_file, forget, mark_created

    output = Output(json_mode)
    database = sqlite_file(workspace.project_url("registry"), workspace.root)
    existed = True
    if database is not None:
        try:
            existed = check_registry_file(database)
        except ConfigError:
            if not force or (database.exists() and database.stat().st_size > 0):
                raise  # a damaged file is moved away by hand, never overwritten
            existed = False
            forget(database)
            for leftover in ("", "-wal", "-shm"):  # an old log must not replay into the new
                database.with_name(database.name + leftover).unlink(missing_ok=True)
    with workspace.registry() as opened:
        revision = opened.upgrade()
    if database is not None:
        mark_created(database)
    where = str(database) if database is not None else "the registry"
    output.result(
        {"created": not existed, "revision": revision, "file": str(database) if database else None},
        lambda console: console.print(
            f"{'created' if not existed else 'already there:'} {where}, schema at revision "
            f"{revision}"
        ),
    )
