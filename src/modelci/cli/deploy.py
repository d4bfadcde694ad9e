"""`modelci deploy`: set what an environment serves, health-checked."""

from __future__ import annotations

import click

from modelci.cli import allow_local_option, json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace


@click.command()
@click.argument("model")
@click.option("--env", "environment", required=True, help="The environment to deploy to.")
@click.option(
    "--version",
    "version",
    default=None,
    help="The version (default: newest for the first environment, else the one "
    "the environment before serves).",
)
@click.option("--force", is_flag=True, help="Deploy although a rule refuses it (recorded).")
@click.option(
    "--skip-tests", is_flag=True, help="Deploy a version whose tests have not passed (recorded)."
)
@json_option
@click.pass_obj
@allow_local_option
def deploy(
    workspace: Workspace,
    model: str,
    environment: str,
    version: str | None,
    force: bool,
    skip_tests: bool,
    json_mode: bool,
) -> None:
    """Point ENV of MODEL at a version, wait until it serves healthily and a smoke request
    answers; otherwise put the previous version back and exit 1. A deploy whose version another
    deploy replaced while it waited ends at once, `superseded`, and exits 1."""
    from modelci.deploy import open_deployer
    from modelci.deploy.rollout import deploy as run_deploy

    output = Output(json_mode)
    with workspace.registry() as registry:
        outcome = run_deploy(
            workspace,
            registry,
            open_deployer(workspace),
            model,
            environment,
            version=version,
            force=force,
            skip_tests=skip_tests,
            note=output.info,
        )

    def render(console: object) -> None:
        if outcome.status in ("deployed", "unchanged"):
            output.out.print(
                f"{outcome.endpoint}: [green]{outcome.status}[/] "
                f"{outcome.version} at {outcome.gateway_url}"
            )
        else:
            colour = "yellow" if outcome.status == "superseded" else "red"
            output.out.print(
                f"{outcome.endpoint}: [{colour}]{outcome.status}[/] "
                f"{outcome.version}: {escape(outcome.reason or '')}"
            )

    output.result(outcome.to_json(), render)
    if outcome.status not in ("deployed", "unchanged"):
        raise click.exceptions.Exit(1)
