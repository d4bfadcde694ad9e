"""`modelci init`: write a starter model repository."""

from __future__ import annotations

from pathlib import Path

import click

from modelci.cli import json_option
from modelci.console import Output, escape


@click.command()
@click.argument(
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
)
@click.option(
    "--model", "model_name", default="example", show_default=True, help="Name of the starter model."
)
@json_option
def init(directory: Path, model_name: str, json_mode: bool) -> None:
    """Write a starter model repository in DIRECTORY; existing files are never overwritten."""
    from modelci.starter import write_starter

    output = Output(json_mode)
    result = write_starter(directory, model_name)

    def render(console: object) -> None:
        for path in result["written"]:
            output.out.print(f"[green]wrote[/] {path}")
        for path in result["kept"]:
            output.out.print(f"[yellow]kept[/]  {path} (exists)")
        if result["git_initialised"]:
            output.out.print(f"made a git repository on the branch {result['main']}")
        if "modelci.toml" in result["written"]:
            output.out.print(
                escape(f"releases come from the branch {result['main']} ([project].main)")
            )
        output.out.print(
            f"next: cd {directory} && modelci validate && git add -A && git commit -m starter"
        )

    output.result(result, render)
