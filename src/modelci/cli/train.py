"""`modelci train`: train models from a clean export of a commit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from modelci.train.outcome import TrainOutcome


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--rev", default="HEAD", show_default=True, help="The commit to train.")
@click.option("--dirty", is_flag=True, help="Train the work tree as it is (recorded as dirty).")
@click.option(
    "--force", is_flag=True, help="Train even when a version with the same fingerprint exists."
)
@click.option("--sample", is_flag=True, help="Train on the deterministic sample; records nothing.")
@click.option(
    "--break-lease",
    is_flag=True,
    help="Take over a version another pipeline is training (its lease), at once.",
)
@json_option
@click.pass_obj
def train(
    workspace: Workspace,
    models: tuple[str, ...],
    rev: str,
    dirty: bool,
    force: bool,
    sample: bool,
    break_lease: bool,
    json_mode: bool,
) -> None:
    """Train MODELS from a clean export of a commit and record each version.

    The job follows SageMaker's script mode (a job folder mirroring /opt/ml, SM_* variables,
    hyperparameters as --name value). A commit whose fingerprint matches a trained version
    reuses its artifact instead of training again.
    """
    from modelci.train.outcome import TrainOptions
    from modelci.train.runner import train_model

    output = Output(json_mode)
    known = _committed_models(workspace, rev)
    for name in models:  # every name must be known before any job starts
        if name not in known:
            workspace.model(name)  # the work tree's (--dirty), or a clear error
    options = TrainOptions(
        rev=rev, dirty=dirty, force=force, sample=sample, break_lease=break_lease
    )
    outcomes: list[TrainOutcome] = []

    def show_line(prefix: str) -> object:
        if json_mode:
            return None
        return lambda line: output.err.print(f"[dim]{escape(prefix)} |[/] {escape(line)}")

    with workspace.lazy_registry() as registry:
        for name in models:
            outcomes.append(
                train_model(
                    workspace,
                    registry,
                    name,
                    options,
                    note=output.info,
                    on_line=show_line(name),  # type: ignore[arg-type]
                )
            )
    output.result(
        {"versions": [o.to_json() for o in outcomes]}, lambda console: _render(console, outcomes)
    )
    failed = [o for o in outcomes if o.status != "ready"]
    if failed:
        if not json_mode:
            for outcome in failed:
                output.err.print(
                    f"[bold red]error:[/] {outcome.version} failed: "
                    f"{escape(outcome.reason or 'unknown reason')}"
                )
        raise click.exceptions.Exit(1)


def _committed_models(workspace: Workspace, rev: str) -> set[str]:
    """Model names at the commit, read the fast way (no spec validation); empty when the
    revision is not a commit (train then says so)."""
    import os

    from modelci import git
    from modelci.changes import SpecCache, snapshot

    commit = git.resolve(workspace.root, rev)
    if commit is None:
        return set()
    return set(snapshot(workspace.root, commit, SpecCache(workspace.root), os.environ).by_name())


def _render(console: Console, outcomes: list[TrainOutcome]) -> None:
    for o in outcomes:
        if o.status != "ready":
            state = "[red]failed[/]"
        elif o.cached:
            state = "cached (already trained)"
        elif o.reused_from:
            state = f"reused from {o.reused_from}"
        elif not o.recorded:
            state = "[green]trained on the sample[/] (not recorded)"
        else:
            state = "[green]trained[/]"
        metrics = " ".join(f"{k}={v:g}" for k, v in o.metrics.items())
        took = f" in {o.duration_s:.1f}s" if o.duration_s and not o.cached else ""
        console.print(f"{o.version}: {state}{took} {metrics}")
