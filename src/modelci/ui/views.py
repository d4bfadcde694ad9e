"""What each page shows, read from the registry into plain data (the templates only lay it
out): the overview, a model, a version, two versions compared, and the event history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelci.aliases import PREFIX
from modelci.registry.base import Event, Pointer, Registry, VersionRecord
from modelci.testing.report import test_result

HISTORY_LIMIT = 200  # events a page shows unless asked for more


@dataclass(frozen=True)
class InForce:
    """One environment's pointer with the version it names (None when that version is gone)."""

    environment: str
    pointer: Pointer
    record: VersionRecord | None


def overview(registry: Registry, environments: list[str]) -> list[dict[str, Any]]:
    """Every model: each environment's version (commit, when, who) and the newest version
    with its test result and metrics."""
    pointers: dict[str, dict[str, Pointer]] = {}
    for pointer in registry.pointers():
        pointers.setdefault(pointer.model, {})[pointer.environment] = pointer
    records = registry.versions_named(
        {p.version for per_model in pointers.values() for p in per_model.values()}
    )
    newest = registry.newest_versions()
    rows = []
    for model in registry.models():
        in_force = {
            environment: InForce(environment, pointer, records.get(pointer.version))
            for environment, pointer in pointers.get(model, {}).items()
            if environment in environments
        }
        rows.append({"model": model, "in_force": in_force, "newest": newest.get(model)})
    return rows


def model_page(registry: Registry, model: str, environments: list[str]) -> dict[str, Any] | None:
    """A model's versions (oldest first, for the chart), its environments' versions, its
    aliases and its events; None for a model the registry does not know."""
    versions = list(reversed(registry.list_versions(model)))
    pointers = registry.pointers(model)
    if not versions and not pointers and model not in registry.models():
        return None
    by_name = {r.version: r for r in versions}
    in_force = [
        InForce(p.environment, p, by_name.get(p.version))
        for p in sorted(pointers, key=lambda p: _order(environments, p.environment))
        if not p.environment.startswith(PREFIX)
    ]
    aliases = {
        p.environment[len(PREFIX) :]: p.version for p in pointers if p.environment[:1] == PREFIX
    }
    metrics = sorted({name for r in versions for name in r.metrics})
    return {
        "model": model,
        "versions": versions,
        "in_force": in_force,
        "aliases": aliases,
        "metrics": metrics,
        "events": registry.events(model, limit=HISTORY_LIMIT),
    }


def version_page(registry: Registry, version: str) -> dict[str, Any] | None:
    """Everything recorded of a version, the environments serving it and its events."""
    record = registry.get_version(version)
    if record is None:
        return None
    events = [e for e in registry.events(record.model) if version in _named(e)]
    pointers = registry.pointers(record.model)
    serving = [p.environment for p in pointers if p.version == version]
    labels: dict[str, list[str]] = {}  # the other version -> why it is worth comparing
    for p in pointers:
        if p.version != version and not p.environment.startswith(PREFIX):
            labels.setdefault(p.version, []).append(f"{p.environment} now")
    names = [r.version for r in registry.list_versions(record.model)]  # newest first
    position = names.index(version)
    if position + 1 < len(names):
        labels.setdefault(names[position + 1], []).append("the version before")
    compare_with = [(", ".join(why), other) for other, why in labels.items()]
    return {
        "record": record,
        "events": events,
        "serving": serving,
        "compare_with": compare_with,
        **results(record),
    }


def results(record: VersionRecord) -> dict[str, Any]:
    """A version's test result (passed, failed, not tested) and its checks as recorded."""
    tests = record.details.get("tests")
    checks = tests.get("checks", []) if isinstance(tests, dict) else []
    return {
        "tests": test_result(record.details),
        "checks": [c for c in checks if isinstance(c, dict)],
    }


def metric_deltas(new: VersionRecord, old: VersionRecord | None) -> list[dict[str, Any]]:
    """Each metric of either version: both values and the change (None where one lacks it)."""
    rows = []
    before = old.metrics if old else {}
    for name in sorted(set(new.metrics) | set(before)):
        a, b = before.get(name), new.metrics.get(name)
        delta = b - a if a is not None and b is not None else None
        rows.append({"metric": name, "old": a, "new": b, "delta": delta})
    return rows


def hyperparameters(registry: Registry, record: VersionRecord) -> dict[str, Any]:
    """The hyperparameters a version was trained with, as recorded (a reuse: those of the
    version whose artifact it reuses); empty when not recorded."""
    found = record.details.get("hyperparameters")
    reused = record.details.get("reused_from")
    if found is None and isinstance(reused, str):
        source = registry.get_version(reused)
        found = source.details.get("hyperparameters") if source else None
    return dict(found) if isinstance(found, dict) else {}


def history(registry: Registry, filters: dict[str, str | None], limit: int) -> list[Event]:
    """Events, newest first, narrowed by model, environment, kind and actor; at most `limit`."""
    return registry.events(
        filters.get("model"),
        kind=filters.get("kind"),
        environment=filters.get("environment"),
        actor=filters.get("actor"),
        limit=limit,
    )


def served_at(
    registry: Registry, moment: datetime, environments: list[str]
) -> list[dict[str, Any]]:
    """What every environment of every model pointed to at `moment` (aliases left out)."""
    served = registry.served_at(moment)
    return [
        {"model": model, "environment": environment, "version": version}
        for (model, environment), version in sorted(
            served.items(), key=lambda item: (item[0][0], _order(environments, item[0][1]))
        )
        if not environment.startswith(PREFIX)
    ]


def _order(environments: list[str], environment: str) -> tuple[int, str]:
    known = environment in environments
    return (environments.index(environment) if known else len(environments), environment)


def _named(event: Event) -> set[str | None]:
    return {event.version, event.to_version, event.from_version}
