"""`modelci golden record`: write golden outputs from a version's real handler."""

from __future__ import annotations

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.workspace import Workspace


@click.group()
def golden() -> None:
    """Golden outputs: fixed inputs with the outputs a version must keep giving."""


@golden.command()
@click.argument("model")
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many test rows to record.",
)
@click.option(
    "--version",
    "version",
    default=None,
    help="Record this version's answers (default: the newest ready one).",
)
@json_option
@click.pass_obj
def record(
    workspace: Workspace, model: str, rows: int, version: str | None, json_mode: bool
) -> None:
    """Write MODEL's golden file from the version's serving handler over a deterministic
    choice of test rows (the same rows on every machine)."""
    from modelci.testing.recording import record_golden

    output = Output(json_mode)
    recorded = record_golden(workspace, model, rows, version, progress=output.info)
    if not recorded.declared:
        output.warn(
            f'{recorded.spec_file}: add `[tests] golden = "{recorded.relative}"` to make the '
            "golden file part of the spec (it is used when present)"
        )
    output.info(
        "commit it, then `modelci train "
        f"{recorded.model} && modelci test {recorded.model}`: a version is tested as its "
        "own commit has its files"
    )
    output.result(
        recorded.to_json(),
        lambda console: console.print(
            f"wrote {recorded.rows} golden rows from {recorded.version} to {recorded.path}"
        ),
    )
