"""`modelci approve`: approve a version for an environment that requires approval."""

from __future__ import annotations

from typing import Any

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace


@click.command()
@click.argument("version")
@click.option("--env", "environment", required=True, help="The environment it may go to.")
@click.option("--note", default=None, help="Why (recorded with the approval).")
@json_option
@click.pass_obj
def approve(
    workspace: Workspace, version: str, environment: str, note: str | None, json_mode: bool
) -> None:
    """Approve VERSION for ENV (recorded with who and which CI run; not by its author)."""
    from modelci.approvals import approve as record_approval
    from modelci.approvals import approvers
    from modelci.deploy.rollout import check_environment
    from modelci.errors import ConfigError

    output = Output(json_mode)
    actor = workspace.actor()
    check_environment(workspace, environment)
    with workspace.registry() as registry:
        record = registry.get_version(version)
        if record is None:
            raise ConfigError(f"no version {version!r} in the registry", key="VERSION")
        event = record_approval(
            registry,
            record,
            environment,
            actor=actor,
            ci_url=workspace.ci_url(),
            note=note,
        )
        everyone = approvers(registry, record, environment)
    required = workspace.project.environments[environment].approval
    result = {
        "version": version,
        "environment": environment,
        "actor": actor,
        "ci_url": event.ci_url,
        "approvers": everyone,
        "required": required,
    }

    def render(console: Any) -> None:
        console.print(f"{version}: [green]approved[/] for {environment} by {escape(actor)}")
        if not required:
            console.print(f"(note: {environment} does not require approval)")

    output.result(result, render)
