"""`modelci shadow`: how a shadow's candidate compares with the live version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console


@click.command()
@click.argument("model")
@click.option("--env", "environment", required=True, help="The environment of the shadow.")
@click.option(
    "--session", type=int, default=None, help="The shadow (its start event's id) to report."
)
@click.option("--version", default=None, help="The newest shadow of this candidate version.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100_000, help="Newest pairs read, at most."
)
@json_option
@click.pass_obj
def shadow(
    workspace: Workspace,
    model: str,
    environment: str,
    session: int | None,
    version: str | None,
    limit: int,
    json_mode: bool,
) -> None:
    """Report the disagreement of ENV's shadow of MODEL with the live version (class labels:
    the share of differing predictions; numbers: the share beyond a relative 1e-9 and the
    relative error's quantiles) and both sides' latency, from the recorded pairs: the running
    shadow, else the newest. Exits 1 when the model's `shadow_disagreement` gate fails."""
    from modelci.deploy.rollout import check_environment
    from modelci.shadow.summary import summarize

    output = Output(json_mode)
    check_environment(workspace, environment)
    workspace.model(model)
    with workspace.registry() as registry:
        document = summarize(
            workspace,
            registry,
            model,
            environment,
            session=session,
            version=version,
            limit=limit,
        )
    output.result(document, lambda console: _render(console, document))
    gate = document["gate"]
    if gate is not None and not gate["passed"]:
        raise click.exceptions.Exit(1)


def _ms(side: dict[str, float | None] | None, key: str) -> str:
    value = side.get(key) if side else None
    return f"{value:.2f}" if value is not None else "-"


def _render(console: Console, document: dict[str, Any]) -> None:
    from rich.table import Table

    if document["session"] is None:
        console.print(f"{document['endpoint']}: no shadow has run")
        return
    state = "running" if document["running"] else "ended"
    percent = f" at {document['percent']}%" if document["percent"] else ""
    console.print(
        f"{document['endpoint']}: shadow {document['session']} of "
        f"{document['version']} ({state}{percent}) against "
        f"{', '.join(document['live_versions']) or '-'}"
    )
    rate = document["disagreement"]
    console.print(
        f"pairs {document['pairs']}, predictions {document['predictions']}, differing "
        f"{document['differing']}"
        + (f" ({rate:.4%})" if rate is not None else "")
        + f", candidate errors {document['candidate_errors']}, dropped {document['dropped']}"
    )
    if "unpaired" in document:  # SageMaker's capture: records whose other side is missing
        unpaired = document["unpaired"]
        console.print(
            f"unpaired records: live {unpaired['live']}, candidate {unpaired['candidate']}"
        )
    errors = document["relative_error"]
    if errors:
        console.print(
            "relative error: " + ", ".join(f"{name} {value:.3g}" for name, value in errors.items())
        )
    table = Table(box=None, pad_edge=False)
    for column in ("latency (ms)", "p50", "p99", "mean"):
        table.add_column(column, justify="left" if column.startswith("lat") else "right")
    for side in ("live", "candidate"):
        values = document["latency_ms"][side]
        table.add_row(side, _ms(values, "p50"), _ms(values, "p99"), _ms(values, "mean"))
    console.print(table)
    gate = document["gate"]
    if gate is not None:
        verdict = "[green]passes[/]" if gate["passed"] else "[red]fails[/]"
        message = f": {escape(gate['message'])}" if gate["message"] else ""
        console.print(f"gate shadow_disagreement {gate['expression']} {verdict}{message}")
