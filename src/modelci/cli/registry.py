"""`modelci registry`: manage the registry itself."""

from __future__ import annotations

import click

from modelci.cli import json_option
from modelci.console import Output
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
