"""`modelci ui`: the dashboard over the registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError
from modelci.workspace import Workspace


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8800,
    show_default=True,
    help="Port to bind (0: any free one).",
)
@click.option(
    "--registry",
    "registry_url",
    default=None,
    metavar="URL",
    help="The registry to show (default: $MODELCI_REGISTRY_URL, else the repository's "
    "[registry].url); with it the dashboard runs anywhere, no checkout needed.",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Offer promote and rollback buttons to people signed in with a token of --tokens.",
)
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File of `ACTOR TOKEN` lines: who may act, and the name their moves are recorded under.",
)
@click.option("--insecure", is_flag=True, help="Listen beyond loopback (warns).")
@json_option
@click.pass_obj
def ui(
    workspace: Workspace,
    host: str,
    port: int,
    registry_url: str | None,
    allow_actions: bool,
    tokens_file: Path | None,
    insecure: bool,
    json_mode: bool,
) -> None:
    """Serve the dashboard: models, versions, metrics, checks and history, read from the
    registry. Read-only unless --allow-actions. With --json, one line `{"url": ...}` on stdout
    says where it listens, once it does."""
    from modelci.serve.auth import is_loopback
    from modelci.ui.source import open_source

    output = Output(json_mode)
    source = open_source(workspace, registry_url)
    actions = None
    if allow_actions:
        if tokens_file is None:
            raise ConfigError(
                "--allow-actions needs --tokens FILE (`ACTOR TOKEN` lines)", key="--tokens"
            )
        if source.workspace is None:
            raise ConfigError(
                "--allow-actions needs the repository's checkout (its environments and deploy "
                "backend): run it inside one, or with -C DIR",
                key="--allow-actions",
            )
        from modelci.ui.actions import Actions, read_tokens

        actions = Actions(source.root, read_tokens(tokens_file))
    elif tokens_file is not None:
        raise ConfigError("--tokens is only for --allow-actions", key="--tokens")
    if not is_loopback(host):
        if not insecure:
            raise ConfigError(
                f"{host} is reachable from other machines: the dashboard shows the whole "
                "registry; pass --insecure to listen there anyway",
                key="--host",
            )
        output.warn(f"the dashboard listens on {host}: anyone who can reach it can read it")
    from modelci.registry import mask_url
    from modelci.ui.server import run_dashboard

    output.info(f"dashboard of {mask_url(source.registry_url)} (Ctrl-C stops)")

    def listening(url: str) -> None:
        if json_mode:
            sys.stdout.write(json.dumps({"url": url}) + "\n")
            sys.stdout.flush()
        else:
            output.info(f"dashboard on {url}")

    run_dashboard(source, actions, host, port, listening)
