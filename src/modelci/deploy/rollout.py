"""A health-checked change of what an environment serves: compare-and-set the pointer, wait
until the backend serves the version and a smoke request answers, and otherwise put the
previous version back. `deploy`, `promote`, `rollback` and `release` all go through here."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from modelci.approvals import missing_approval
from modelci.deploy.base import Deployer, Served, superseded_error
from modelci.deploy.checked import check_artifact
from modelci.deploy.guardrails import finish_rollout, gradual_plan, roll_out
from modelci.deploy.intent import ended_event, new_intent, put_back, settle
from modelci.deploy.movegates import move_refusals
from modelci.deploy.recovery import finish_interrupted
from modelci.deploy.smoke import HEALTH_TIMEOUT_S, check_serving
from modelci.errors import (
    ConfigError,
    DeployFailed,
    DeploySuperseded,
    ModelciError,
    PointerConflict,
    RolloutAlarm,
)
from modelci.progress import Progress
from modelci.registry.base import Event, Pointer, Registry, VersionRecord
from modelci.workspace import Workspace


@dataclass
class DeployOutcome:
    """What a deploy did."""

    model: str
    environment: str
    endpoint: str
    version: str
    previous_version: str | None
    status: str  # deployed | unchanged | rolled_back | failed | superseded
    url: str | None = None
    gateway_url: str | None = None
    reason: str | None = None
    moved: bool = True  # this deploy moved the pointer (False: it lost the race, or none was due)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # every field, in order


def check_environment(workspace: Workspace, environment: str) -> None:
    if environment not in workspace.environments:
        raise ConfigError(
            f"unknown environment {environment!r} (environments: "
            f"{', '.join(workspace.environments)})",
            key="--env",
        )


def deployed_versions(registry: Registry, model: str, environment: str) -> list[str]:
    """Versions an environment has served, newest first, failed deploys left out."""
    # A deploy_failed (or deploy_superseded: it never served healthily) event cancels the newest
    # pointer move to its version before it; walking newest first, count the failures not yet
    # matched with the move they cancel.
    unmatched: dict[str, int] = {}
    seen: list[str] = []
    for event in registry.events(model):
        if event.environment != environment or event.to_version is None:
            continue
        if event.kind in ("deploy_failed", "deploy_superseded"):
            unmatched[event.to_version] = unmatched.get(event.to_version, 0) + 1
            continue
        if event.kind not in ("deploy", "promote", "rollback", "release"):
            continue
        if unmatched.get(event.to_version):
            unmatched[event.to_version] -= 1
            continue
        if event.details.get("failed"):
            continue
        if event.to_version not in seen:
            seen.append(event.to_version)
    return seen


def rollback_target(registry: Registry, model: str, environment: str, to: str | None) -> str:
    """The version a rollback returns to: the named one, else the one the environment served
    before the current one (failed deploys left out)."""
    pointer = registry.get_pointer(model, environment)
    if pointer is None:
        raise ConfigError(f"{environment} serves no version of {model!r}: nothing to roll back")
    if to is not None:
        return to
    history = deployed_versions(registry, model, environment)
    earlier = [v for v in history if v != pointer.version]
    if not earlier:
        raise ConfigError(
            f"{environment} has served no version of {model!r} before "
            f"{pointer.version}: name one with --to"
        )
    return earlier[0]


def deploy(
    workspace: Workspace,
    registry: Registry,
    deployer: Deployer,
    model: str,
    environment: str,
    *,
    version: str | None = None,
    force: bool = False,
    skip_tests: bool = False,
    kind: str = "deploy",
    tag: str | None = None,
    source: str | None = None,
    note: Progress,
) -> DeployOutcome:
    """Make `environment` serve `version` of `model`, health-checked, or put back the previous
    version and report why. Bad requests raise ConfigError and change nothing. A deploy of
    the endpoint that was killed before its health check is finished first; this one's intent
    is recorded with its pointer move, so that the same holds if it is killed. `source`: where
    the version comes from (`promote --from`), for the drift gate (default: the one before)."""
    from modelci.testing.runner import tests_passed

    check_environment(workspace, environment)
    spec = workspace.model(model)
    finish_interrupted(workspace, registry, deployer, model, environment, note)
    order = workspace.environments
    index = order.index(environment)
    record = _choose(registry, model, environment, order, version)
    endpoint = workspace.endpoint(model, environment)
    pointer = registry.get_pointer(model, environment)
    previous = pointer.version if pointer else None
    check_artifact(workspace, registry, record, environment)  # whatever --force says

    def superseded() -> str | None:
        """The version another deploy pointed the environment at since ("": none)."""
        now = registry.get_pointer(model, environment)
        return None if now and now.version == record.version else now.version if now else ""

    def ended(
        status: str, served: Served | None = None, reason: str | None = None, moved: bool = True
    ) -> DeployOutcome:
        """This deploy's outcome, `status`."""
        url, gateway = (served.url, served.gateway_url) if served else (None, None)
        return DeployOutcome(
            model,
            environment,
            endpoint,
            record.version,
            previous,
            status,
            url,
            gateway,
            reason,
            moved,
        )

    def unchanged() -> DeployOutcome:
        """The pointer already names the version: wait until it serves."""
        try:
            served = deployer.apply(endpoint, record.version, HEALTH_TIMEOUT_S, superseded)
        except DeploySuperseded as error:
            return ended("superseded", reason=error.render(), moved=False)
        return ended("unchanged", served, moved=False)

    if previous == record.version:
        return unchanged()

    actor, ci_url = workspace.actor(), workspace.ci_url()
    plan = gradual_plan(workspace, deployer, spec, environment, previous, kind)  # None: at once
    # a rollback returns to a version the environment served: no rule stands in its way
    problems = (
        []
        if kind == "rollback"
        else _refusals(
            workspace,
            registry,
            record,
            order[index - 1] if index else None,
            previous,
            skip_tests=skip_tests,
            tested=tests_passed(record),
        )
        + move_refusals(workspace, registry, record, environment, previous, source)  # shadow, drift
    )
    unapproved = (
        missing_approval(registry, record, environment)
        if kind != "rollback" and workspace.project.environments[environment].approval
        else None
    )
    if unapproved:  # not a rule --force overrides: the approval is someone else's call
        problems = [unapproved, *problems]
    if problems and (not force or unapproved):
        registry.append_event(
            Event(
                kind="deploy_refused",
                model=model,
                version=record.version,
                environment=environment,
                commit=record.commit,
                actor=actor,
                ci_url=ci_url,
                details={"reasons": problems},
            )
        )
        raise DeployFailed(
            "; ".join(problems)
            + (
                ""
                if unapproved
                else " (--force to deploy anyway"
                + (
                    ", --skip-tests to skip the test gate"
                    if any("tests" in p for p in problems)
                    else ""
                )
                + ")"
            )
        )

    event = Event(
        kind=kind,
        model=model,
        version=record.version,
        commit=record.commit,
        tag=tag,
        actor=actor,
        ci_url=ci_url,
        details={"forced": bool(problems), "overridden": problems, "skip_tests": skip_tests},
    )
    try:
        moved = registry.set_pointer(
            model,
            environment,
            record.version,
            expected_generation=pointer.generation if pointer else None,
            event=event,
            pending=new_intent(previous, kind, gradual=plan is not None),
        )
    except PointerConflict:
        # another deploy moved the pointer since it was read: this one lost the race, and
        # changed nothing (no event: the pointer never named its version)
        now = registry.get_pointer(model, environment)
        if now is not None and now.version == record.version:
            previous = record.version  # the winner deploys this very version: wait for it
            return unchanged()
        lost = superseded_error(
            endpoint, record.version, now.version if now else None, "was about to move it"
        )
        note(f"{endpoint}: {record.version} superseded by {lost.by or 'an undeploy'}")
        return ended("superseded", reason=lost.render(), moved=False)
    note(f"{endpoint}: {previous or 'nothing'} -> {record.version}, waiting until healthy")
    try:
        served = (
            roll_out(registry, deployer, moved, endpoint, plan, HEALTH_TIMEOUT_S, superseded, note)
            if plan
            else check_serving(
                workspace, deployer, spec, endpoint, record.version, HEALTH_TIMEOUT_S, superseded
            )
        )
    except DeploySuperseded as error:
        # the pointer is the winner's: nothing to put back, and ours did not fail
        registry.append_event(
            _ended(
                workspace, "deploy_superseded", model, environment, record, previous, by=error.by
            )
        )
        note(f"{endpoint}: {record.version} superseded by {error.by or 'an undeploy'}")
        return ended("superseded", reason=error.render())
    except ModelciError as error:
        status = _put_back(
            workspace, registry, deployer, moved, endpoint, record, previous, error, note
        )
        return ended(status, reason=error.render())
    settle(registry, moved, actor=actor, ci_url=ci_url, recovered=False)
    served = finish_rollout(deployer, served, HEALTH_TIMEOUT_S) if plan else served  # all to it
    if environment == order[-1]:
        follow_production(workspace, registry, model, record, tag=tag)
    return ended("deployed", served)


def follow_production(
    workspace: Workspace,
    registry: Registry,
    model: str,
    record: VersionRecord,
    *,
    tag: str | None = None,
) -> None:
    """Move the alias `latest` to what production now serves: first the OCI store's tag
    `<model>-latest` and a pushed image's `latest` (when there are such), then the alias."""
    from modelci.aliases import LATEST, set_alias
    from modelci.envs.retag import follow_image_alias

    workspace.store().follow_alias(model, record.version, LATEST)
    follow_image_alias(model, record.commit, LATEST, workspace.project.image.registry)
    set_alias(
        registry,
        model,
        LATEST,
        record.version,
        Event(
            kind="alias",
            model=model,
            version=record.version,
            commit=record.commit,
            tag=tag,
            actor=workspace.actor(),
            ci_url=workspace.ci_url(),
            details={"alias": LATEST},
        ),
    )


def _choose(
    registry: Registry, model: str, environment: str, order: list[str], version: str | None
) -> VersionRecord:
    """The named version, else: the newest ready one for the first environment, the one the
    environment before serves for a later one."""
    if version is not None:
        record = registry.get_version(version)
        if record is None or record.model != model:
            raise ConfigError(f"no version {version!r} of model {model!r}", key="--version")
    else:
        index = order.index(environment)
        if index == 0:
            record = next((r for r in registry.list_versions(model) if r.status == "ready"), None)
            if record is None:
                raise ConfigError(
                    f"model {model!r} has no trained version: run `modelci train {model}` first"
                )
        else:
            before = registry.get_pointer(model, order[index - 1])
            if before is None:
                raise ConfigError(
                    f"{order[index - 1]} serves no version of {model!r} to "
                    f"deploy to {environment}: name one with --version"
                )
            found = registry.get_version(before.version)
            assert found is not None
            record = found
    if record.status != "ready":
        raise ConfigError(f"version {record.version} is {record.status}, not ready")
    return record


def _refusals(
    workspace: Workspace,
    registry: Registry,
    record: VersionRecord,
    before: str | None,
    previous: str | None,
    *,
    skip_tests: bool,
    tested: bool | None,
) -> list[str]:
    """Why the deploy should not happen: untested, skipping an environment, or going back to
    an older commit than the one in force (a rollback names its version and says so)."""
    from modelci import git

    problems: list[str] = []
    if not skip_tests and tested is not True:
        problems.append(
            f"{record.version}'s tests "
            + ("failed" if tested is False else "have not run (`modelci test`)")
        )
    if before is not None and record.version not in deployed_versions(
        registry, record.model, before
    ):
        problems.append(f"{record.version} has not been deployed to {before} first")
    current = registry.get_version(previous) if previous else None
    if (
        current is not None
        and current.commit != record.commit
        and git.is_ancestor(workspace.root, record.commit, current.commit)
    ):
        problems.append(
            f"{record.version} is older than {current.version}, which is in force "
            "(use `modelci rollback` to go back)"
        )
    return problems


def _ended(
    workspace: Workspace,
    kind: str,
    model: str,
    environment: str,
    record: VersionRecord,
    previous: str | None,
    **details: Any,
) -> Event:
    """The event of this deploy when it did not end deployed, with what ended it."""
    return ended_event(
        kind,
        model,
        environment,
        record.version,
        previous,
        commit=record.commit,
        actor=workspace.actor(),
        ci_url=workspace.ci_url(),
        **details,
    )


def _put_back(
    workspace: Workspace,
    registry: Registry,
    deployer: Deployer,
    moved: Pointer,
    endpoint: str,
    record: VersionRecord,
    previous: str | None,
    error: ModelciError,
    note: Progress,
) -> str:
    """Restore the previous version after a failed deploy; the status to report."""
    reason = error.render()
    restored = put_back(
        registry,
        moved,
        previous,
        reason,
        commit=record.commit,
        actor=workspace.actor(),
        ci_url=workspace.ci_url(),
        **(error.details if isinstance(error, RolloutAlarm) else {}),
    )
    if not restored:  # someone else moved the pointer since: leave theirs, record our failure
        registry.append_event(
            _ended(
                workspace,
                "deploy_failed",
                moved.model,
                moved.environment,
                record,
                previous,
                reason=reason,
            )
        )
        return "failed"
    if previous is None:
        return "failed"
    note(f"{endpoint}: {record.version} failed ({reason}); back to {previous}")
    # the host keeps trying on a failure; the pointer is right, which is what matters
    with contextlib.suppress(DeployFailed):
        deployer.apply(endpoint, previous, HEALTH_TIMEOUT_S)
    return "rolled_back"
