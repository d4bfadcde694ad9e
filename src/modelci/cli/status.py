"""`modelci status` and `modelci history`: what runs where, and what happened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.errors import ConfigError
from modelci.status import iso, status_report
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from modelci.registry.base import Event


@click.command()
@json_option
@click.pass_obj
def status(workspace: Workspace, json_mode: bool) -> None:
    """Show every model, the version each environment runs and the newest version built."""
    output = Output(json_mode)
    report = status_report(workspace)
    for warning in report["warnings"]:
        output.warn(warning)
    output.result(report, lambda console: _render_status(console, report, workspace))


def _render_status(console: Console, report: dict[str, Any], workspace: Workspace) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("model")
    for environment in workspace.environments:
        table.add_column(environment, overflow="fold")  # a URL is never cut short
    table.add_column("newest built")
    for entry in report["models"]:
        cells = []
        for environment in workspace.environments:
            where = entry["environments"][environment]
            actor = (where or {}).get("actor") or ""
            cells.append(
                f"{where['version']}\n[dim]{where['time'][:16].replace('T', ' ')} "
                f"{escape(actor.split(' <')[0])}[/]\n{_results(where)}"
                if where
                else "[dim]-[/]"
            )
            if where:  # what the backend says; `deploy.backend` only labels it
                cells[-1] += "\n" + _endpoint(where, workspace.project.deploy.backend)
                split = (where.get("pending") or {}).get("rollout")
                if split:  # a canary or linear rollout under way
                    cells[-1] += (
                        f"\n[yellow]rollout: {split['candidate_percent']}% "
                        f"{escape(split['candidate'])}, {split['previous_percent']}% "
                        f"{escape(str(split['previous']))}[/]"
                    )
                serving = where.get("serving") or {}
                for host, said in sorted((serving.get("hosts") or {}).items()):
                    cells[-1] += (
                        f"\n[dim]{escape(host)}: {escape(str(said['version']))} "
                        f"{escape(str(said['status']))} at {escape(str(said['reported_at']))}[/]"
                    )
        latest = entry["latest"]
        cells.append(
            f"{latest['version']} ({latest['status']})\n{_results(latest)}"
            if latest
            else "[dim]-[/]"
        )
        name = entry["model"] + ("\n[magenta]retired[/]" if entry.get("retired") else "")
        table.add_row(name, *cells)
    if report["models"]:
        console.print(table)
    else:
        console.print("no models: add a folder with a model.toml (see `modelci init`)")


_HEALTH = {"healthy": "green", "unhealthy": "red", "unknown": "yellow"}


def _endpoint(where: dict[str, Any], backend: str) -> str:
    """`local: healthy (RUNNING)`, the version served when it is not the pointer's, and the
    URL requests go to: an endpoint's state, for people."""
    endpoint, serving = where["endpoint"], where.get("serving") or {}
    health = endpoint["health"]
    text = f"{backend}: [{_HEALTH.get(health, 'dim')}]{health}[/]"
    status = serving.get("status")
    if status and health not in ("not serving", "unknown"):
        text += f" [dim]({escape(str(status))})[/]"
    if endpoint["version"] and endpoint["version"] != where["version"]:
        text += f" [yellow]serves {escape(str(endpoint['version']))}[/]"
    if health == "unknown" and serving.get("message"):
        text += f"\n[dim]{escape(str(serving['message']))}[/]"
    if endpoint["url"]:
        text += f"\n[dim]{escape(str(endpoint['url']))}[/]"
    return text


def _results(entry: dict[str, Any]) -> str:
    """`tests passed · score=0.75`: a version's test result and metrics, for people."""
    colour = {"passed": "green", "failed": "red"}.get(entry["tests"], "dim")
    metrics = " ".join(f"{k}={v:g}" for k, v in sorted(entry["metrics"].items()))
    return f"[{colour}]tests {entry['tests']}[/]" + (
        f" [dim]{escape(metrics)}[/]" if metrics else ""
    )


def _outcome(event: dict[str, Any]) -> str:
    """What a test or gate event found: the failed checks with expected and actual values."""
    from modelci.testing.report import describe_failure

    details = event["details"]
    if event["kind"] == "test":
        if details.get("passed"):
            return "passed"
        failures = details.get("failures") or [{"name": n} for n in details.get("failed", [])]
        return "failed: " + "; ".join(describe_failure(f) for f in failures)
    if event["kind"] == "gate_failed":
        return "gates: " + ", ".join(details.get("gates", []))
    return str(details.get("reason") or "")


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "time": iso(event.time),
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
        "details": event.details,
    }


@click.command()
@click.argument("model")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most N events.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Show the events hosts write in bulk too (rollout_traffic, shadow_batch; --json "
    "always has them).",
)
@json_option
@click.pass_obj
def history(
    workspace: Workspace, model: str, limit: int | None, everything: bool, json_mode: bool
) -> None:
    """Show MODEL's events (train, deploy, promote, rollback, gate failure), newest first."""
    from modelci.history import History, describe_hidden
    from modelci.history import history as read_history

    output = Output(json_mode)
    readable, broken = workspace.readable_models
    for error in broken:
        output.warn(f"{error.render()} (left out)")
    known = {m.name for m in readable}
    found = History([])
    if workspace.registry_exists():
        with workspace.registry() as registry:
            known.update(registry.models())
            if model in known:
                found = read_history(
                    registry, model, limit=limit, everything=everything or json_mode
                )
    if model not in known:
        from modelci.spec import find_model

        find_model(readable, model)  # raises, listing the known names
        raise ConfigError(f"no model named {model!r}")
    report = {"events": [_event_json(e) for e in found.events]}
    hidden = describe_hidden(found.hidden)

    def render(console: Console) -> None:
        if report["events"] or not hidden:
            _render_history(console, model, report["events"])
        if hidden:
            console.print(f"[dim]{hidden}[/]")

    output.result(report, render)


def _render_history(console: Console, model: str, events: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not events:
        console.print(f"{model}: no events yet")
        return
    with_ci = any(e["ci_url"] for e in events)
    with_tag = any(e["tag"] for e in events)
    table = Table(box=None, pad_edge=False)
    for column in (
        "time (UTC)",
        "kind",
        "environment",
        "version",
        "from",
        "commit",
        *(("tag",) if with_tag else ()),
        "actor",
        "result",
        *(("ci run",) if with_ci else ()),
    ):
        table.add_column(column, no_wrap=column not in ("ci run", "result"), overflow="fold")
    for e in events:
        actor = (e["actor"] or "").split(" <")[0]  # the name; the email is in --json
        table.add_row(
            (e["time"] or "")[:19].replace("T", " "),
            e["kind"],
            e["environment"] or "",
            e["to_version"] or e["version"] or "",
            e["from_version"] or "",
            (e["commit"] or "")[:12],
            *((escape(e["tag"] or ""),) if with_tag else ()),
            escape(actor),
            escape(_outcome(e)),
            *((escape(e["ci_url"] or ""),) if with_ci else ()),
        )
    console.print(table)
