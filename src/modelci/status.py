"""What runs where: every model, the version each environment points to, what the deploy backend
says of it, and the newest version built."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelci.deploy.intent import owner_name
from modelci.errors import ModelciError
from modelci.serve.split import split_view
from modelci.testing.report import test_result
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.deploy.base import Deployer
    from modelci.registry.base import Registry, VersionRecord


def iso(moment: datetime | None) -> str | None:
    """The moment in ISO 8601, or None."""
    return moment.isoformat() if moment else None


def status_report(workspace: Workspace) -> dict[str, Any]:
    """Every model (of the repository or the registry), the version each environment points
    to (with what the deploy backend says of its endpoint, when it says something) and the
    newest version built; `warnings` names each model.toml that could not be read."""
    readable, broken = workspace.readable_models
    names = {m.name for m in readable}
    warnings = [
        f"{error.render()} (left out; status shows the registry's state)" for error in broken
    ]
    environments = workspace.environments
    models: list[dict[str, Any]] = []
    if not workspace.registry_exists():  # nothing built yet: don't create a registry to say so
        return {
            "models": [
                {
                    "model": n,
                    "environments": dict.fromkeys(environments),
                    "latest": None,
                    "retired": False,
                }
                for n in sorted(names)
            ],
            "warnings": warnings,
        }
    from modelci.deploy import open_deployer

    try:
        deployer: Deployer | None = open_deployer(workspace)
        unknown = None
    except ModelciError as error:  # status still says what the registry holds
        deployer, unknown = None, _unknown(error)
    in_tree = set(names)
    with workspace.registry() as registry:
        _finish_interrupted(workspace, registry, warnings, deploys=deployer is not None)
        names.update(registry.models())
        pointers = {(p.model, p.environment): p for p in registry.pointers()}
        shadows = {(s.model, s.environment): s for s in registry.shadows()}
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
                    "time": iso(pointer.updated_at),
                    "actor": pointer.actor,
                    **_results(in_force),
                }
                if pointer.pending is not None:  # a deploy under way (or its process's end)
                    per_environment[environment]["pending"] = {
                        "previous_version": pointer.pending.previous,
                        "kind": pointer.pending.kind,
                        "by": owner_name(pointer.pending),
                    }
                    if (split := split_view(registry, pointer)) is not None:  # canary, linear
                        per_environment[environment]["pending"]["rollout"] = split
                if (shadow := shadows.get((name, environment))) is not None:  # deploy --shadow
                    per_environment[environment]["shadow"] = {
                        "version": shadow.version,
                        "percent": shadow.percent,
                        "event": shadow.event,
                    }
                # what the backend says (the endpoint host with a quick probe, Ray Serve's
                # application state, SageMaker's endpoint)
                endpoint = workspace.endpoint(name, environment)
                serving = _describe(deployer, endpoint) or unknown
                if serving is not None:
                    per_environment[environment]["serving"] = serving
                per_environment[environment]["endpoint"] = endpoint_view(endpoint, serving)
            latest = newest.get(name)
            # its folder is gone and a retire took its endpoints down
            retired = (
                name not in in_tree
                and not any(per_environment.values())
                and bool(registry.events(name, kind="retire", limit=1))
            )
            models.append(
                {
                    "model": name,
                    "retired": retired,
                    "environments": per_environment,
                    "latest": {
                        "version": latest.version,
                        "commit": latest.commit,
                        "status": latest.status,
                        **_results(latest),
                    }
                    if latest
                    else None,
                }
            )
    return {"models": models, "warnings": warnings}


def _finish_interrupted(
    workspace: Workspace, registry: Registry, warnings: list[str], *, deploys: bool
) -> None:
    """Mark failed the versions whose training was killed (modelci.train.lease) and, when the
    deploy backend can be asked (`deploys`), finish the deploys killed before their health
    check (modelci.deploy.recovery), saying what became of each in `warnings`; a registry
    that refuses the write is said there too."""
    from modelci.deploy.recovery import finish_all_interrupted
    from modelci.train.lease import reap_interrupted

    try:
        reap_interrupted(registry, warnings.append)
        if deploys:
            finish_all_interrupted(workspace, registry, warnings.append)
    except ModelciError as error:
        warnings.append(f"what a killed command left could not be finished: {error.render()}")


def _results(record: VersionRecord | None) -> dict[str, Any]:
    """A version's test result (passed, failed, not tested) and metrics."""
    if record is None:
        return {"tests": "not tested", "metrics": {}}
    return {"tests": test_result(record.details), "metrics": dict(record.metrics)}


def endpoint_view(name: str, serving: dict[str, object] | None) -> dict[str, object]:
    """An endpoint as `status` shows it whatever the backend: its name, the URL requests go
    to, its health (healthy, unhealthy, not serving, unknown) and the version it serves."""
    if serving is None or serving.get("status") in ("NOT_SERVING", "NOT_DEPLOYED"):
        health = "not serving"
    elif serving.get("status") == "UNKNOWN":
        health = "unknown"
    else:
        health = "healthy" if serving.get("healthy") else "unhealthy"
    serving = serving or {}
    return {
        "name": name,
        "url": serving.get("url") if health != "not serving" else None,
        "health": health,
        "version": serving.get("version") if health != "not serving" else None,
    }


def _describe(deployer: Deployer | None, endpoint: str) -> dict[str, object] | None:
    if deployer is None:
        return None
    try:
        return deployer.describe(endpoint)
    except ModelciError as error:
        return _unknown(error)


def _unknown(error: ModelciError) -> dict[str, object]:
    """What status says when the backend cannot be asked (settings, credentials, network)."""
    return {"healthy": False, "status": "UNKNOWN", "message": error.render()}
