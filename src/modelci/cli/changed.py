"""`modelci changed`: which models a commit range touches."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from modelci.changes import ChangeReport


@click.command()
@click.option(
    "--base",
    help="Compare from this revision (default: each model from the commit last deployed to "
    "the first environment, a model never deployed counting as changed; with no registry "
    "yet, HEAD^).",
)
@click.option("--head", default="HEAD", show_default=True, help="Compare up to this revision.")
@json_option
@click.pass_obj
def changed(workspace: Workspace, base: str | None, head: str, json_mode: bool) -> None:
    """List the models that the commits from BASE to HEAD touch, with the reasons."""
    from modelci.changes import detect

    output = Output(json_mode)
    report = detect(
        workspace.root,
        base=base,
        head=head,
        # nothing deployed anywhere yet: the question is what the commit touched
        deployed=(
            _deployed_commits(workspace) if base is None and workspace.registry_exists() else None
        ),
    )
    output.result(report.to_json(), lambda console: _render(console, report))


def _deployed_commits(workspace: Workspace) -> Callable[[str], dict[str, str]]:
    """Each model's base: the commit of its version in the first environment (the pipeline,
    and the registry with it, imported only when asked)."""
    from modelci.pipeline import deployed_commits

    return lambda _head: deployed_commits(workspace)


def _render(console: Console, report: ChangeReport) -> None:
    from rich.table import Table

    base = report.base[:12] if report.base else "(each model's last deploy)"
    console.print(f"[bold]{base}..{report.head[:12]}[/]: {len(report.changed)} changed")
    if report.changed:
        table = Table(box=None, pad_edge=False)
        for column in ("model", "path", "reasons"):
            table.add_column(column)
        for entry in report.changed:
            data = entry.to_json()
            reasons = ", ".join(data["reasons"])
            if entry.renamed_from:
                reasons += f" (was {entry.renamed_from})"
            table.add_row(entry.model, entry.path, escape(reasons))
        console.print(table)
        for entry in report.changed:
            if entry.error:  # its pipeline row will fail; the others are not held up
                console.print(f"[red]bad spec[/]: {entry.model}: {escape(entry.error)}")
    if report.deleted:
        console.print(f"deleted: {', '.join(report.deleted)}")
    if report.uncommitted:
        console.print(
            f"[yellow]uncommitted changes[/] (not counted): {', '.join(report.uncommitted)}"
        )
