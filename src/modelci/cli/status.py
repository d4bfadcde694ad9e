"""`modelci status` and `modelci history`: what runs where, and what happened."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.errors import ConfigError
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from modelci.registry.base import Event


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def status_report(workspace: Workspace) -> dict[str, Any]:
    """Every model (of the repository or the registry), the version each environment points
    to and the newest version built."""
    names = {m.name for m in workspace.models}
    environments = workspace.environments
    models: list[dict[str, Any]] = []
    if not workspace.registry_exists():  # nothing built yet: don't create a registry to say so
        return {
            "models": [
                {"model": n, "environments": dict.fromkeys(environments), "latest": None}
                for n in sorted(names)
            ]
        }
    serving = None
    if workspace.project.deploy.backend == "ray":
        from modelci.deploy import open_deployer

        serving = open_deployer(workspace).describe
    with workspace.registry() as registry:
        names.update(registry.models())
        pointers = {(p.model, p.environment): p for p in registry.pointers()}
        newest: dict[str, Any] = {}
        for record in registry.list_versions():
            newest.setdefault(record.model, record)  # newest first
        for name in sorted(names):
            per_environment: dict[str, Any] = {}
            for environment in environments:
                pointer = pointers.get((name, environment))
                if pointer is None:
                    per_environment[environment] = None
                    continue
                in_force = registry.get_version(pointer.version)
                per_environment[environment] = {
                    "version": pointer.version,
                    "commit": in_force.commit if in_force else None,
                    "time": _iso(pointer.updated_at),
                    "actor": pointer.actor,
                }
                if serving is not None:  # what the backend says (Ray Serve's application state)
                    per_environment[environment]["serving"] = serving(
                        workspace.endpoint(name, environment)
                    )
            latest = newest.get(name)
            models.append(
                {
                    "model": name,
                    "environments": per_environment,
                    "latest": {
                        "version": latest.version,
                        "commit": latest.commit,
                        "status": latest.status,
                    }
                    if latest
                    else None,
                }
            )
    return {"models": models}


@click.command()
@json_option
@click.pass_obj
def status(workspace: Workspace, json_mode: bool) -> None:
    """Show every model, the version each environment runs and the newest version built."""
    output = Output(json_mode)
    report = status_report(workspace)
    output.result(report, lambda console: _render_status(console, report, workspace))


def _render_status(console: Console, report: dict[str, Any], workspace: Workspace) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("model")
    for environment in workspace.environments:
        table.add_column(environment)
    table.add_column("newest built")
    for entry in report["models"]:
        cells = []
        for environment in workspace.environments:
            where = entry["environments"][environment]
            actor = (where or {}).get("actor") or ""
            cells.append(
                f"{where['version']}\n[dim]{where['time'][:16].replace('T', ' ')} "
                f"{escape(actor.split(' <')[0])}[/]"
                if where
                else "[dim]-[/]"
            )
            if where and where.get("serving"):
                cells[-1] += f"\n[dim]ray: {escape(str(where['serving'].get('status')))}[/]"
        latest = entry["latest"]
        cells.append(f"{latest['version']} ({latest['status']})" if latest else "[dim]-[/]")
        table.add_row(entry["model"], *cells)
    if report["models"]:
        console.print(table)
    else:
        console.print("no models: add a folder with a model.toml (see `modelci init`)")


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "time": _iso(event.time),
        "kind": event.kind,
        "model": event.model,
        "version": event.version,
        "environment": event.environment,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "commit": event.commit,
        "tag": event.tag,
        "actor": event.actor,
        "ci_url": event.ci_url,
    }


@click.command()
@click.argument("model")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most N events.")
@json_option
@click.pass_obj
def history(workspace: Workspace, model: str, limit: int | None, json_mode: bool) -> None:
    """Show MODEL's events (train, deploy, promote, rollback, gate failure), newest first."""
    output = Output(json_mode)
    known = {m.name for m in workspace.models}
    events: list[Event] = []
    if workspace.registry_exists():
        with workspace.registry() as registry:
            known.update(registry.models())
            events = registry.events(model, limit=limit) if model in known else []
    if model not in known:
        from modelci.spec import find_model

        find_model(workspace.models, model)  # raises, listing the known names
        raise ConfigError(f"no model named {model!r}")
    report = {"events": [_event_json(e) for e in events]}
    output.result(report, lambda console: _render_history(console, model, report["events"]))


def _render_history(console: Console, model: str, events: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not events:
        console.print(f"{model}: no events yet")
        return
    with_ci = any(e["ci_url"] for e in events)
    table = Table(box=None, pad_edge=False)
    for column in (
        "time (UTC)",
        "kind",
        "environment",
        "version",
        "from",
        "commit",
        "actor",
        *(("ci run",) if with_ci else ()),
    ):
        table.add_column(column, no_wrap=column != "ci run", overflow="fold")
    for e in events:
        actor = (e["actor"] or "").split(" <")[0]  # the name; the email is in --json
        table.add_row(
            (e["time"] or "")[:19].replace("T", " "),
            e["kind"],
            e["environment"] or "",
            e["to_version"] or e["version"] or "",
            e["from_version"] or "",
            (e["commit"] or "")[:12],
            escape(actor),
            *((escape(e["ci_url"] or ""),) if with_ci else ()),
        )
    console.print(table)
