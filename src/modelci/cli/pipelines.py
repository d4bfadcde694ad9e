"""`modelci run` (the merge pipeline) and `modelci release` (the tag pipeline)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import click

from modelci.cli import allow_local_option, json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.table import Table

    from modelci.pipeline import ModelRun

_STYLE = {
    "done": "green",
    "cached": "cyan",
    "failed": "red",
    "skipped": "dim",
    "running": "yellow",
    "pending": "dim",
    "retired": "magenta",
}


def _table(runs: list[ModelRun]) -> Table:
    from rich.table import Table

    from modelci.pipeline import STEPS

    table = Table(box=None, pad_edge=False)
    for column in ("model", "version", *STEPS, "metrics"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.model,
            run.version or "",
            *(f"[{_STYLE.get(run.steps[s], '')}]{run.steps[s]}[/]" for s in STEPS),
            escape(" ".join(f"{k}={v:g}" for k, v in sorted(run.metrics.items()))),
        )
    return table


@click.command()
@click.option(
    "--base",
    default=None,
    help="Compare from this revision (default: each model from the commit last deployed to "
    "the first environment; a model never deployed there is built).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Models handled side by side.",
)
@click.option(
    "--break-lease",
    is_flag=True,
    help="Take over versions another pipeline is training, at once (default: wait for "
    "it, saying so, and use its result; a pipeline that stops renewing its ten-minute lease "
    "is waited for no longer).",
)
@json_option
@click.pass_obj
@allow_local_option
def run(
    workspace: Workspace, base: str | None, jobs: int, break_lease: bool, json_mode: bool
) -> None:
    """The merge pipeline: build, train, test and deploy every changed model to the first
    environment. One model's failure never stops another's; exit 1 when any failed."""
    from modelci.pipeline import run_pipeline

    output = Output(json_mode)
    lock = threading.Lock()
    shown: list[ModelRun] = []
    live: Any = None
    if not json_mode and output.err.is_terminal:
        from rich.live import Live

        # rebuilt on every refresh, so that each model's step shows as it moves
        live = Live(
            console=output.err,
            refresh_per_second=4,
            transient=True,
            get_renderable=lambda: _table(shown),
        )
        live.start()

    def changed(runs: list[ModelRun]) -> None:
        if live is not None:
            with lock:
                shown[:] = runs
                live.refresh()

    def note(message: str) -> None:
        if live is None:
            output.progress(message)

    try:
        commit, runs = run_pipeline(
            workspace, base=base, jobs=jobs, note=note, on_change=changed, break_lease=break_lease
        )
    finally:
        if live is not None:
            live.stop()
    document = {"commit": commit, "models": [r.to_json() for r in runs]}

    def render(console: Any) -> None:
        if not runs:
            console.print(f"{commit[:12]}: no model changed")
            return
        console.print(_table(runs))
        failed = [r for r in runs if r.status == "failed"]
        console.print(f"{commit[:12]}: {len(runs) - len(failed)} of {len(runs)} model(s) ok")
        for r in failed:
            output.err.print(f"[bold red]error:[/] {r.model}: {escape(r.error or 'failed')}")

    output.result(document, render)
    if click.get_current_context().find_root().params.get("traceback"):
        _print_tracebacks(runs)
    if any(r.status == "failed" for r in runs):
        raise click.exceptions.Exit(1)


def _print_tracebacks(runs: list[ModelRun]) -> None:
    """Under --traceback: each failed model's original exception, where it was raised."""
    import sys
    import traceback

    for r in runs:
        if r.exception is not None:
            sys.stderr.write(f"{r.model}: traceback of the failure:\n")
            sys.stderr.write("".join(traceback.format_exception(r.exception)))


@click.command()
@click.argument("tag")
@click.option("--force", is_flag=True, help="Release although a gate refuses it (recorded).")
@json_option
@click.pass_obj
@allow_local_option
def release(workspace: Workspace, tag: str, force: bool, json_mode: bool) -> None:
    """The tag pipeline: deploy to production, for every model, the version in force at the
    tagged main commit, and move the alias `latest` to it. Exit 1 when a model has none, or
    a gate (shadow_disagreement, drift) refuses its version."""
    from modelci.pipeline import release as run_release

    output = Output(json_mode)
    commit, results = run_release(workspace, tag, note=output.info, force=force)
    document = {"tag": tag, "commit": commit, "models": results}

    def render(console: Any) -> None:
        for entry in results:
            colour = "green" if entry["status"] in ("deployed", "unchanged") else "red"
            console.print(
                f"{entry['model']}: [{colour}]{entry['status']}[/] "
                f"{entry['version'] or '-'} (was {entry['previous_version'] or '-'})"
                + (f": {escape(entry['reason'])}" if entry.get("reason") else "")
            )

    output.result(document, render)
    if any(e["status"] not in ("deployed", "unchanged") for e in results):
        raise click.exceptions.Exit(1)
