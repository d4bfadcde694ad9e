"""Taking endpoints down: `modelci undeploy` by hand, and `run` retiring a model whose folder
was deleted. The pointer is cleared through the registry's compare-and-delete (with the event
that records it), then the backend stops serving the endpoint; the local host follows the
registry, so a cleared pointer stops that endpoint's server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelci.deploy.base import Deployer
from modelci.deploy.rollout import check_environment
from modelci.progress import Progress
from modelci.registry.base import Event, Registry
from modelci.workspace import Workspace

REMOVE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Undeployed:
    """What an undeploy did to one environment of a model."""

    model: str
    environment: str
    endpoint: str
    previous_version: str | None
    status: str  # undeployed | absent (nothing was deployed there)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "environment": self.environment,
            "endpoint": self.endpoint,
            "previous_version": self.previous_version,
            "status": self.status,
        }


def undeploy(
    workspace: Workspace,
    registry: Registry,
    deployer: Deployer,
    model: str,
    environment: str,
    *,
    note: Progress,
    kind: str = "undeploy",
    commit: str | None = None,
) -> Undeployed:
    """Clear the environment's pointer (compare-and-delete, with a `kind` event) and wait until
    the backend no longer serves the endpoint. Raises PointerConflict when another writer moved
    the pointer first, DeployFailed when the backend does not stop it."""
    check_environment(workspace, environment)
    endpoint = workspace.endpoint(model, environment)
    pointer = registry.get_pointer(model, environment)
    if pointer is None:
        return Undeployed(model, environment, endpoint, None, "absent")
    registry.clear_pointer(
        model,
        environment,
        expected_generation=pointer.generation,
        event=Event(
            kind=kind,
            model=model,
            version=pointer.version,
            commit=commit,
            actor=workspace.actor(),
            ci_url=workspace.ci_url(),
        ),
    )
    note(f"{endpoint}: {pointer.version} undeployed; stopping the endpoint")
    deployer.remove(endpoint, REMOVE_TIMEOUT_S)
    return Undeployed(model, environment, endpoint, pointer.version, "undeployed")


def retire(
    workspace: Workspace,
    registry: Registry,
    deployer: Deployer,
    model: str,
    *,
    commit: str,
    note: Progress,
) -> list[Undeployed]:
    """Undeploy a model whose folder was deleted from every environment that serves it, each
    recorded as a `retire` event naming the commit that deleted it."""
    return [
        undeploy(
            workspace,
            registry,
            deployer,
            model,
            environment,
            note=note,
            kind="retire",
            commit=commit,
        )
        for environment in workspace.environments
        if registry.get_pointer(model, environment) is not None
    ]
