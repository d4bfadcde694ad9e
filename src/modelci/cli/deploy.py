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
@click.option(
    "--shadow",
    is_flag=True,
    help="Mirror ENV's requests to the version instead, never returning its answers.",
)
@click.option(
    "--percent", type=int, default=None, help="With --shadow: the share mirrored (default 100)."
)
@click.option("--stop", is_flag=True, help="With --shadow: end ENV's shadow.")
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
    shadow: bool,
    percent: int | None,
    stop: bool,
    json_mode: bool,
) -> None:
    """Point ENV of MODEL at a version, wait until it serves healthily and a smoke request
    answers; otherwise put the previous version back and exit 1. A deploy whose version another
    deploy replaced while it waited ends at once, `superseded`, and exits 1.

    With --shadow the live version stays: PERCENT % of ENV's requests are sent to the
    version as well, its answers recorded beside the live ones (`modelci shadow`) and never
    returned; `--shadow --stop` ends it. One shadow per environment: a new one replaces it."""
    if shadow or stop or percent is not None:
        _shadow(workspace, model, environment, version, shadow, percent, stop, json_mode)
        return
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


def _shadow(
    workspace: Workspace,
    model: str,
    environment: str,
    version: str | None,
    shadow: bool,
    percent: int | None,
    stop: bool,
    json_mode: bool,
) -> None:
    from modelci.deploy import open_deployer
    from modelci.errors import ConfigError
    from modelci.shadow.control import start_shadow, stop_shadow

    if not shadow:
        raise ConfigError("--percent and --stop go with --shadow", key="--shadow")
    if stop and (percent is not None or version is not None):
        raise ConfigError("--shadow --stop takes no --percent or --version", key="--stop")
    output = Output(json_mode)
    deployer = open_deployer(workspace)
    with workspace.registry() as registry:
        if stop:
            outcome = stop_shadow(
                workspace, registry, deployer, model, environment, note=output.info
            )
        else:
            outcome = start_shadow(
                workspace,
                registry,
                deployer,
                model,
                environment,
                version=version,
                percent=100 if percent is None else percent,
                note=output.info,
            )

    def render(console: object) -> None:
        if outcome.status == "shadowing":
            output.out.print(
                f"{outcome.endpoint}: [green]shadowing[/] {outcome.percent}% to "
                f"{outcome.version} (live: {outcome.live_version}, shadow {outcome.event})"
            )
        elif outcome.status == "stopped":
            output.out.print(f"{outcome.endpoint}: shadow of {outcome.version} stopped")
        elif outcome.status == "none":
            output.out.print(f"{outcome.endpoint}: no shadow was running")
        else:
            output.out.print(
                f"{outcome.endpoint}: [red]failed[/] shadow {outcome.version}: "
                f"{escape(outcome.reason or '')}"
            )

    output.result(outcome.to_json(), render)
    if outcome.status == "failed":
        raise click.exceptions.Exit(1)
