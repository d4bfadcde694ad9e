"""`modelci undeploy`: stop serving a model in one environment."""

from __future__ import annotations

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError
from modelci.workspace import Workspace


@click.command()
@click.argument("model")
@click.option("--env", "environment", required=True, help="The environment to take it out of.")
@json_option
@click.pass_obj
def undeploy(workspace: Workspace, model: str, environment: str, json_mode: bool) -> None:
    """Clear ENV's pointer of MODEL (recorded as an `undeploy` event) and wait until its
    endpoint is no longer served. A model whose folder is gone can be undeployed too."""
    from modelci.deploy import open_deployer
    from modelci.deploy.retire import undeploy as run_undeploy

    output = Output(json_mode)
    readable, _ = workspace.readable_models
    with workspace.registry() as registry:
        known = {m.name for m in readable} | set(registry.models())
        if model not in known:
            from modelci.spec import find_model

            find_model(readable, model)  # raises, listing the known names
            raise ConfigError(f"no model named {model!r}")
        outcome = run_undeploy(
            workspace, registry, open_deployer(workspace), model, environment, note=output.info
        )

    def render(console: object) -> None:
        if outcome.status == "undeployed":
            output.out.print(f"{outcome.endpoint}: undeployed {outcome.previous_version}")
        else:
            output.out.print(f"{outcome.endpoint}: nothing was deployed")

    output.result(outcome.to_json(), render)
