"""`modelci drift`: captured requests against the training data's statistics; exit 1 on drift
(usable as a promotion gate in CI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from modelci.monitor.drift import DriftReport

THRESHOLD = 0.5  # Evidently's drift share; modelci.monitor.drift.THRESHOLD


@click.command()
@click.argument("model")
@click.option("--env", "environment", required=True, help="The environment whose endpoint.")
@click.option("--since", help="Requests from this time on: 30m, 2h, 7d, or 2026-12-03T01:00:00Z.")
@click.option("--version", help="This version's captures (default: the one ENV serves).")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=THRESHOLD,
    show_default=True,
    help="The share of drifted columns that fails.",
)
@json_option
@click.pass_obj
def drift(
    workspace: Workspace,
    model: str,
    environment: str,
    since: str | None,
    version: str | None,
    threshold: float,
    json_mode: bool,
) -> None:
    """Compare the requests MODEL's endpoint in ENV captured with the training data of the
    version it serves, column by column (KS / chi-squared up to 1,000 reference rows,
    Wasserstein / Jensen-Shannon above; missing, extra and mistyped columns). Exits 1 when
    the share of drifted columns reaches the threshold, or nothing was captured."""
    from modelci.monitor.captured import parse_since
    from modelci.monitor.drift import drift_report

    output = Output(json_mode)
    report = drift_report(
        workspace,
        model,
        environment,
        since=parse_since(since) if since else None,
        threshold=threshold,
        version=version,
    )
    output.result(report.to_json(), lambda console: _render(console, report))
    if not report.passed:
        raise click.exceptions.Exit(1)


def _render(console: Console, report: DriftReport) -> None:
    from rich.table import Table

    if not report.rows:
        console.print(f"{report.endpoint} ({report.version}): nothing captured to compare")
        return
    verdict = "[red]DRIFT[/]" if report.drifted else "[green]no drift[/]"
    table = Table(
        title=f"{report.endpoint} ({report.version}) vs its {report.channel!r} channel: "
        f"{verdict}, {report.share:.0%} of columns drifted (threshold {report.threshold:.0%}), "
        f"{report.rows} rows from {report.records} records",
        box=None,
        pad_edge=False,
        title_justify="left",
    )
    for column in ("column", "test", "score", "threshold", "drifted", "rows", "note"):
        table.add_column(column, overflow="fold")
    for item in report.columns:
        table.add_row(
            escape(item.column),
            item.test,
            "" if item.score is None else f"{item.score:.4g}",
            "" if item.threshold is None else f"{item.threshold:g}",
            "[red]yes[/]" if item.drifted else "no",
            str(item.rows),
            escape(item.note),
        )
    console.print(table)
