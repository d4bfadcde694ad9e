"""`modelci test`: reproducibility, golden outputs, gates and no-regression."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from modelci.testing.report import TestReport


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--version", "version", default=None, help="Test this version (default: newest).")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write JUnit XML here, for CI to show.",
)
@click.option(
    "--skip",
    type=click.Choice(["reproducibility", "golden", "gates"]),
    multiple=True,
    help="Leave a kind of check out (recorded).",
)
@json_option
@click.pass_obj
def test(
    workspace: Workspace,
    models: tuple[str, ...],
    version: str | None,
    junit: Path | None,
    skip: tuple[str, ...],
    json_mode: bool,
) -> None:
    """Run every check of MODELS' versions and record the results; exit 1 when one fails.

    Reproducibility trains twice on the deterministic sample and compares; golden rows go
    through the real serving handler; gates and no_regression judge the version's metrics.
    """
    from modelci.testing.report import write_junit
    from modelci.testing.runner import choose_version, test_version

    output = Output(json_mode)
    if version is not None and len(models) > 1:
        from modelci.errors import ConfigError

        raise ConfigError("--version names one version: test one model at a time with it")
    specs = [workspace.model(name) for name in models]
    reports: list[TestReport] = []
    with workspace.registry() as registry:
        records = [choose_version(registry, spec.name, version) for spec in specs]
        for spec, record in zip(specs, records, strict=True):
            reports.append(
                test_version(workspace, registry, spec, record, skip=skip, note=output.info)
            )
    if junit is not None:
        write_junit(reports, junit)
    document = (
        reports[0].to_json()
        if len(reports) == 1
        else {"passed": all(r.passed for r in reports), "reports": [r.to_json() for r in reports]}
    )
    output.result(document, lambda console: _render(console, reports))
    if not all(r.passed for r in reports):
        raise click.exceptions.Exit(1)


def _render(console: Console, reports: list[TestReport]) -> None:
    from rich.table import Table

    for report in reports:
        table = Table(
            title=f"{report.version}: {'passed' if report.passed else 'FAILED'}",
            box=None,
            pad_edge=False,
            title_justify="left",
        )
        for column in ("check", "kind", "result", "expected", "actual", "message"):
            table.add_column(column, overflow="fold")
        for check in report.checks:
            result = (
                "[dim]skipped[/]"
                if check.skipped
                else "[green]pass[/]"
                if check.passed
                else "[red]FAIL[/]"
            )
            table.add_row(
                check.name,
                check.kind,
                result,
                escape(_short(check.expected)),
                escape(_short(check.actual)),
                escape(check.message),
            )
        console.print(table)


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
