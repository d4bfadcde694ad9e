"""Finishing a deploy whose own process is gone (`modelci.deploy.intent`): the next command
that touches the endpoint (deploy, promote, rollback, release, run, status) health-checks the
version the pointer was left on, as the deploy would have, and settles the pointer when it
serves, or puts the previous version back with the reason recorded."""

from __future__ import annotations

import contextlib

from modelci.deploy.base import Deployer
from modelci.deploy.intent import interrupted, orphaned, put_back, settle
from modelci.deploy.smoke import HEALTH_TIMEOUT_S, check_serving
from modelci.errors import ConfigError, DeployFailed, DeploySuperseded, ModelciError
from modelci.progress import Progress
from modelci.registry.base import Registry
from modelci.workspace import Workspace


def finish_interrupted(
    workspace: Workspace,
    registry: Registry,
    deployer: Deployer,
    model: str,
    environment: str,
    note: Progress,
) -> str | None:
    """Finish the endpoint's deploy if it is pending and its process is gone: "completed"
    (its version serves healthily), "rolled_back" (the previous version is back), or None
    (nothing to finish, or another process finished it first)."""
    pointer = registry.get_pointer(model, environment)
    if pointer is None or pointer.pending is None or not orphaned(pointer):
        return None
    endpoint = workspace.endpoint(model, environment)
    note(f"{endpoint}: {interrupted(pointer)}; checking it now")
    try:
        spec = workspace.model(model)
    except ConfigError:
        spec = None  # its folder is gone or broken: health without the smoke request

    def superseded() -> str | None:
        now = registry.get_pointer(model, environment)
        if now is not None and now.generation == pointer.generation:
            return None
        return now.version if now else ""

    actor, ci_url = workspace.actor(), workspace.ci_url()
    try:
        if pointer.pending.gradual:  # a canary's alarms have no one left to watch them
            raise DeployFailed("its canary or linear rollout was left unfinished")
        check_serving(
            workspace, deployer, spec, endpoint, pointer.version, HEALTH_TIMEOUT_S, superseded
        )
    except DeploySuperseded:
        return None  # the host, or another command, finished it meanwhile
    except ModelciError as error:
        previous = pointer.pending.previous
        record = registry.get_version(pointer.version)
        reason = f"{interrupted(pointer)}, and it does not serve: {error.render()}"
        if not put_back(
            registry,
            pointer,
            previous,
            reason,
            commit=record.commit if record else None,
            actor=actor,
            ci_url=ci_url,
        ):
            return None
        note(f"{endpoint}: back to {previous or 'nothing'} ({reason})")
        if previous is not None:
            with contextlib.suppress(DeployFailed):  # the pointer is right; the host retries
                deployer.apply(endpoint, previous, HEALTH_TIMEOUT_S)
        return "rolled_back"
    if not settle(registry, pointer, actor=actor, ci_url=ci_url, recovered=True):
        return None
    note(f"{endpoint}: {pointer.version} serves healthily; its deploy is complete")
    return "completed"


def finish_all_interrupted(
    workspace: Workspace, registry: Registry, note: Progress
) -> dict[str, str]:
    """Finish every orphaned deploy of the repository's environments (see
    `finish_interrupted`; the deploy backend is opened only when there is one); endpoint ->
    what became of it."""
    from modelci.deploy import open_deployer

    finished: dict[str, str] = {}
    deployer: Deployer | None = None
    for pointer in registry.pointers():
        if pointer.environment not in workspace.environments or not orphaned(pointer):
            continue
        deployer = deployer or open_deployer(workspace)
        done = finish_interrupted(
            workspace, registry, deployer, pointer.model, pointer.environment, note
        )
        if done is not None:
            finished[workspace.endpoint(pointer.model, pointer.environment)] = done
    return finished
