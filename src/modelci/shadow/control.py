"""Starting and ending a shadow (`modelci deploy --shadow [--percent N]`, `--shadow
--stop`): the registry keeps the environment's shadow, so that every host following it
agrees, and the backend is waited for until it mirrors to the candidate. A shadow whose
candidate cannot start is ended again, recorded, and the deploy fails; the live version is
never touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelci.deploy.base import Deployer
from modelci.deploy.smoke import HEALTH_TIMEOUT_S
from modelci.errors import ConfigError, DeployFailed
from modelci.progress import Progress
from modelci.registry.base import Event, Registry, VersionRecord
from modelci.shadow.pairs import END_KIND, START_KIND
from modelci.workspace import Workspace


@dataclass
class ShadowOutcome:
    """What a `deploy --shadow` did."""

    model: str
    environment: str
    endpoint: str
    version: str | None  # the candidate
    live_version: str | None
    percent: int | None
    event: int | None  # the id of the event that started the shadow: its pairs name it
    status: str  # shadowing | failed | stopped | none
    url: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "environment": self.environment,
            "endpoint": self.endpoint,
            "version": self.version,
            "live_version": self.live_version,
            "percent": self.percent,
            "event": self.event,
            "status": self.status,
            "url": self.url,
            "reason": self.reason,
        }


def check_percent(percent: int) -> int:
    if not 1 <= percent <= 100:
        raise ConfigError(f"--percent {percent}: expected 1 to 100", key="--percent")
    return percent


def start_shadow(
    workspace: Workspace,
    registry: Registry,
    deployer: Deployer,
    model: str,
    environment: str,
    *,
    version: str | None,
    percent: int,
    note: Progress,
) -> ShadowOutcome:
    """Mirror `percent` % of the environment's requests to `version` (default: what a deploy
    would choose), and wait until the backend does."""
    from modelci.deploy.rollout import check_environment

    check_environment(workspace, environment)
    check_percent(percent)
    workspace.model(model)  # a model of this repository (ConfigError listing them)
    endpoint = workspace.endpoint(model, environment)
    pointer = registry.get_pointer(model, environment)
    if pointer is None:
        raise ConfigError(
            f"{environment} serves no version of {model!r}: a shadow mirrors a live endpoint's "
            "requests, deploy one first"
        )
    record = _candidate(workspace, registry, model, environment, version)
    shadow = registry.set_shadow(
        model,
        environment,
        record.version,
        percent,
        event=Event(
            kind=START_KIND,
            model=model,
            commit=record.commit,
            actor=workspace.actor(),
            ci_url=workspace.ci_url(),
            details={"percent": percent, "live": pointer.version},
        ),
    )
    note(f"{endpoint}: mirroring {percent}% to {record.version}, waiting until it serves")
    outcome = ShadowOutcome(
        model,
        environment,
        endpoint,
        record.version,
        pointer.version,
        percent,
        shadow.event,
        "shadowing",
    )
    try:
        outcome.url = deployer.await_shadow(endpoint, shadow, HEALTH_TIMEOUT_S)
    except DeployFailed as error:
        outcome.status, outcome.reason = "failed", error.render()
        registry.clear_shadow(
            model,
            environment,
            event=_end_event(workspace, model, {"reason": outcome.reason, "failed": True}),
        )
        deployer.await_shadow(endpoint, None, HEALTH_TIMEOUT_S)
    return outcome


def stop_shadow(
    workspace: Workspace,
    registry: Registry,
    deployer: Deployer,
    model: str,
    environment: str,
    *,
    note: Progress,
) -> ShadowOutcome:
    """End the environment's shadow (recorded) and wait until the backend no longer
    mirrors; `none` when there was none."""
    from modelci.deploy.rollout import check_environment

    check_environment(workspace, environment)
    endpoint = workspace.endpoint(model, environment)
    pointer = registry.get_pointer(model, environment)
    live = pointer.version if pointer else None
    ended = registry.clear_shadow(model, environment, event=_end_event(workspace, model, {}))
    if ended is None:
        return ShadowOutcome(model, environment, endpoint, None, live, None, None, "none")
    note(f"{endpoint}: no longer mirroring to {ended.version}")
    deployer.await_shadow(endpoint, None, HEALTH_TIMEOUT_S)
    return ShadowOutcome(
        model,
        environment,
        endpoint,
        ended.version,
        live,
        ended.percent,
        ended.event,
        "stopped",
    )


def _end_event(workspace: Workspace, model: str, details: dict[str, Any]) -> Event:
    return Event(
        kind=END_KIND,
        model=model,
        actor=workspace.actor(),
        ci_url=workspace.ci_url(),
        details=details,
    )


def _candidate(
    workspace: Workspace, registry: Registry, model: str, environment: str, version: str | None
) -> VersionRecord:
    """The named version, else the one a deploy would choose: the newest ready one for the
    first environment, the one the environment before serves for a later one."""
    order = workspace.environments
    index = order.index(environment)
    if version is None and index > 0:
        before = registry.get_pointer(model, order[index - 1])
        if before is None:
            raise ConfigError(
                f"{order[index - 1]} serves no version of {model!r} to shadow in "
                f"{environment}: name one with --version"
            )
        version = before.version
    if version is not None:
        record = registry.get_version(version)
        if record is None or record.model != model:
            raise ConfigError(f"no version {version!r} of model {model!r}", key="--version")
    else:
        found = next((r for r in registry.list_versions(model) if r.status == "ready"), None)
        if found is None:
            raise ConfigError(f"model {model!r} has no trained version to shadow")
        record = found
    if record.status != "ready":
        raise ConfigError(f"version {record.version} is {record.status}, not ready")
    return record
