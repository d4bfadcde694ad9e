"""`modelci promote`, `modelci rollback` and `modelci alias`: moving versions between
environments and names, each through the same health-checked deploy."""

from __future__ import annotations

from typing import Any

import click

from modelci.cli import allow_local_option, json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace


def _finish(output: Output, outcome: object) -> None:
    from modelci.deploy.rollout import DeployOutcome

    assert isinstance(outcome, DeployOutcome)

    def render(console: object) -> None:
        colour = "green" if outcome.status in ("deployed", "unchanged") else "red"
        output.out.print(
            f"{outcome.endpoint}: [{colour}]{outcome.status}[/] {outcome.version}"
            f" (was {outcome.previous_version or 'nothing'})"
            + (f": {escape(outcome.reason)}" if outcome.reason else "")
        )

    output.result(outcome.to_json(), render)
    if outcome.status not in ("deployed", "unchanged"):
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("model")
@click.option("--env", "environment", required=True, help="The environment to roll back.")
@click.option(
    "--to",
    "to",
    default=None,
    help="The version to return to (default: the one "
    "before the current one in that environment's history).",
)
@json_option
@click.pass_obj
@allow_local_option
def rollback(
    workspace: Workspace, model: str, environment: str, to: str | None, json_mode: bool
) -> None:
    """Return ENV of MODEL to its previous (or the named) version, health-checked."""
    from modelci.deploy import open_deployer
    from modelci.deploy.rollout import check_environment, deploy, rollback_target

    output = Output(json_mode)
    check_environment(workspace, environment)
    with workspace.registry() as registry:
        target = rollback_target(registry, model, environment, to)
        outcome = deploy(
            workspace,
            registry,
            open_deployer(workspace),
            model,
            environment,
            version=target,
            kind="rollback",
            note=output.info,
        )
    _finish(output, outcome)


@click.command()
@click.argument("model")
@click.option("--from", "source", required=True, help="The environment to take the version from.")
@click.option("--to", "target", required=True, help="The environment to deploy it to.")
@click.option(
    "--version", "version", default=None, help="The version (default: the one --from serves)."
)
@click.option("--force", is_flag=True, help="Promote although a rule refuses it (recorded).")
@json_option
@click.pass_obj
@allow_local_option
def promote(
    workspace: Workspace,
    model: str,
    source: str,
    target: str,
    version: str | None,
    force: bool,
    json_mode: bool,
) -> None:
    """Deploy to --to the version that --from serves (or has served), health-checked."""
    from modelci.deploy import open_deployer
    from modelci.deploy.rollout import check_environment, deploy, deployed_versions
    from modelci.errors import ConfigError

    output = Output(json_mode)
    check_environment(workspace, source)
    check_environment(workspace, target)
    with workspace.registry() as registry:
        if version is None:
            pointer = registry.get_pointer(model, source)
            if pointer is None:
                raise ConfigError(f"{source} serves no version of {model!r} to promote")
            version = pointer.version
        elif version not in deployed_versions(registry, model, source) and not force:
            raise ConfigError(
                f"{version} has never been deployed to {source}: nothing to "
                "promote from there (--force to deploy it anyway)"
            )
        outcome = deploy(
            workspace,
            registry,
            open_deployer(workspace),
            model,
            target,
            version=version,
            force=force,
            kind="promote",
            source=source,  # the drift gate judges the version's captures there
            note=output.info,
        )
    _finish(output, outcome)


@click.command()
@click.argument("model")
@click.argument("name", required=False)
@click.argument("version", required=False)
@json_option
@click.pass_obj
def alias(
    workspace: Workspace, model: str, name: str | None, version: str | None, json_mode: bool
) -> None:
    """Show MODEL's aliases, show one (NAME), or point NAME at VERSION."""
    from modelci.aliases import aliases, check_name, set_alias
    from modelci.errors import ConfigError
    from modelci.registry.base import Event
    from modelci.spec import find_model

    output = Output(json_mode)
    find_model(workspace.models, model)
    with workspace.registry() as registry:
        if name is not None:
            check_name(name, workspace.environments)
        if version is not None:
            assert name is not None
            record = registry.get_version(version)
            if record is None or record.model != model:
                raise ConfigError(f"no version {version!r} of model {model!r}", key="VERSION")
            set_alias(
                registry,
                model,
                name,
                version,
                Event(
                    kind="alias",
                    model=model,
                    version=version,
                    commit=record.commit,
                    actor=workspace.actor(),
                    ci_url=workspace.ci_url(),
                    details={"alias": name},
                ),
            )
        known = aliases(registry, model)
    if name is not None and name not in known:
        raise ConfigError(
            f"model {model!r} has no alias {name!r} (aliases: {', '.join(sorted(known)) or 'none'})"
        )
    shown = {name: known[name]} if name is not None else known

    def render(console: Any) -> None:
        for alias_name, target in sorted(shown.items()):
            console.print(f"{model}@{alias_name} -> {target}")
        if not shown:
            console.print(f"{model}: no aliases")

    output.result({"model": model, "aliases": shown}, render)
