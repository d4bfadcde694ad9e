"""`modelci serve`: the local endpoint host."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ModelciError
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

STOP_TIMEOUT_S = 60.0


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to bind (0: any free one).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the token every request must carry (default: $MODELCI_SERVE_TOKEN); "
    "needed to listen beyond loopback.",
)
@click.option("--insecure", is_flag=True, help="Listen beyond loopback without a token (warns).")
@click.option(
    "--registry",
    "registry_url",
    help="Follow this registry (as MODELCI_REGISTRY_URL): a host with no checkout.",
)
@click.option("--store", "store_url", help="Read artifacts from this store (as MODELCI_STORE_URL).")
@click.option(
    "--name",
    help="How this host names itself in its reports to the registry (default: machine:port).",
)
@click.option("--stop", is_flag=True, help="Stop the host running for this repository.")
@click.option("--status", "show_status", is_flag=True, help="Show the running host's endpoints.")
@click.option("--listen-fd", type=int, hidden=True, help="The supervisor's socket (internal).")
@click.option(
    "--follow-registry",
    is_flag=True,
    hidden=True,
    help="Follow the registry and store of the environment, checkout or not (internal).",
)
@json_option
@click.pass_obj
def serve(
    workspace: Workspace,
    host: str,
    port: int,
    token_file: Path | None,
    insecure: bool,
    registry_url: str | None,
    store_url: str | None,
    name: str | None,
    stop: bool,
    show_status: bool,
    listen_fd: int | None,
    follow_registry: bool,
    json_mode: bool,
) -> None:
    """Host every locally deployed endpoint at /endpoints/<endpoint>/invocations (as AWS's SDK
    calls SageMaker), following the registry and swapping versions without dropping a
    request. A local `deploy` starts it in the background when it is not running. A small
    supervisor runs the host and starts it again if it dies.

    With no checkout (in any folder, or given --registry/--store) it follows the shared
    registry and store named by --registry/--store or MODELCI_REGISTRY_URL/MODELCI_STORE_URL,
    keeps its environments and artifacts in ./.modelci/, and reports what it serves through
    the registry, where the `host` deploy backend waits for it."""
    from modelci.serve.hoststate import read_state, starting_pid

    workspace = _following(
        workspace,
        registry_url,
        store_url,
        serving=not (stop or show_status),
        follow=follow_registry,
    )
    output = Output(json_mode)
    state = read_state(workspace)
    if stop:
        # the lock's holder is the supervisor: stopped, it stops the host it runs
        supervisor = starting_pid(workspace)
        pid = int(state["pid"]) if state else supervisor
        if pid is None:
            output.result(
                {"stopped": False, "running": False},
                lambda c: c.print("no endpoint host runs for this repository"),
            )
            return
        os.kill(supervisor or pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and (read_state(workspace) or starting_pid(workspace)):
            time.sleep(0.05)
        if read_state(workspace) or starting_pid(workspace):
            raise ModelciError(
                f"the endpoint host (pid {pid}) did not stop within {STOP_TIMEOUT_S:g} s"
            )
        url = state.get("url")
        output.result(
            {"stopped": True, "pid": pid, "url": url},
            lambda c: c.print(
                f"stopped the endpoint host at {url}"
                if url
                else f"stopped the endpoint host (pid {pid}) while it was starting up"
            ),
        )
        return
    if show_status:
        from modelci.deploy.local import LocalDeployer

        status = (
            LocalDeployer(workspace)._get(str(state["url"]), "/-/endpoints", 5) if state else None
        )
        report = {
            "running": bool(state),
            "url": state.get("url"),
            "endpoints": (status or {}).get("endpoints", {}),
            "processes": (status or {}).get("processes", []),
        }
        output.result(report, lambda console: _render_status(console, report, status))
        return
    from modelci.serve.auth import check_exposure, read_token

    token = read_token(token_file)
    warning = check_exposure(host, token, insecure)  # before anything is bound
    if warning and listen_fd is None:  # said once, by the supervisor
        output.warn(warning)
    if listen_fd is not None:  # the host itself, started by the supervisor
        import socket

        from modelci.serve.running import run_host

        run_host(workspace, socket.socket(fileno=listen_fd), host, token, token_file, name)
        return
    from modelci.serve.supervisor import supervise

    where = (
        f"in {workspace.root} (no checkout), following the shared registry"
        if workspace.detached
        else f"for {workspace.root}"
    )
    output.info(f"endpoint host {where} on http://{host}:{port} (Ctrl-C stops)")
    options = [*(["--token-file", str(token_file)] if token_file else [])]
    options += [*(["--insecure"] if insecure else []), *(["--name", name] if name else [])]
    # the registry and store reach the host through the environment (never argv, which any
    # user of the machine can read): the flag only says to follow them, checkout or not
    options += ["--follow-registry"] if workspace.detached else []
    code = supervise(workspace, host, port, options)
    if code:
        raise click.exceptions.Exit(code)


def _following(
    workspace: Workspace,
    registry_url: str | None,
    store_url: str | None,
    *,
    serving: bool,
    follow: bool = False,
) -> Workspace:
    """The checkout's workspace, or, with --registry/--store or outside any checkout, the
    folder of a host that follows a shared registry and store (both must be named to serve;
    --stop and --status need neither)."""
    from modelci import git
    from modelci.errors import ConfigError, GitError
    from modelci.workspace import DetachedWorkspace

    if registry_url is None and store_url is None and not follow:
        try:
            git.find_root(workspace.start)
            return workspace
        except GitError:
            pass
    for variable, value in (
        ("MODELCI_REGISTRY_URL", registry_url),
        ("MODELCI_STORE_URL", store_url),
    ):
        if value:
            os.environ[variable] = value  # read by the settings, never passed to a version
        if serving and not os.environ.get(variable):
            option = "--" + variable.split("_")[1].lower()
            raise ConfigError(
                f"a host with no checkout follows a shared registry and store: set {variable} "
                f"or pass {option}",
                key=variable,
            )
    return DetachedWorkspace(workspace.start)


def _render_status(console: Console, report: dict[str, Any], answered: object) -> None:
    """The host's endpoints as a table for people: version, health, restarts, URL."""
    from rich.markup import escape
    from rich.table import Table

    if not report["running"]:
        console.print("no endpoint host runs for this repository (`modelci serve` starts one)")
        return
    if answered is None:
        console.print(f"the endpoint host at {report['url']} does not answer")
        return
    endpoints: dict[str, dict[str, Any]] = report["endpoints"]
    console.print(f"endpoint host at {report['url']}: {len(endpoints)} endpoint(s)")
    if not endpoints:
        return
    table = Table(box=None, pad_edge=False)
    for column in ("endpoint", "version", "healthy", "restarts", "pid", "loaded", "url"):
        table.add_column(column)
    for name, endpoint in sorted(endpoints.items()):
        healthy = endpoint.get("healthy")
        loaded = endpoint.get("loaded", healthy)  # a version with its own process: when healthy
        table.add_row(
            name,
            str(endpoint.get("version") or "-"),
            "[green]yes[/]" if healthy else "[red]no[/]",
            str(endpoint.get("restarts", "-")),
            str(endpoint.get("pid") or "-"),
            "-" if loaded is None else "yes" if loaded else "no",
            str(endpoint.get("url") or "-"),
        )
    console.print(table)
    for process in report.get("processes", []):
        size = process.get("pss_bytes") or process.get("rss_bytes")
        console.print(
            f"process {process.get('pid')} ({process.get('isolation')}): "
            f"{len(process.get('endpoints') or {})} endpoint(s), "
            f"{len(process.get('loaded') or [])} loaded"
            + (f", {size / 2**20:.0f} MiB" if size else "")
        )
    for name, endpoint in sorted(endpoints.items()):
        failure = endpoint.get("last_error")
        if failure:
            console.print(
                f"[red]{escape(name)}[/]: {escape(str(failure.get('version')))} failed: "
                f"{escape(str(failure.get('error')))}"
            )
