"""The merge pipeline (`run`: build, train, test and deploy every changed model to the first
environment) and the tag pipeline (`release`: deploy to production the versions a tagged
main commit was built from, and move `latest` to them)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from modelci import git
from modelci.errors import ConfigError, ModelciError
from modelci.progress import Progress
from modelci.registry.base import Registry, VersionRecord
from modelci.workspace import Workspace

STEPS = ("build", "train", "test", "deploy")


@dataclass
class ModelRun:
    """One model's way through the merge pipeline."""

    model: str
    version: str | None = None
    steps: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STEPS, "pending"))
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # the exception behind `error`, with its traceback: `run --traceback` prints it
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> str:
        if self.error or "failed" in self.steps.values():
            return "failed"
        return "done"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "steps": dict(self.steps),
            "error": self.error,
            "metrics": dict(self.metrics),
        }


def run_model(
    workspace: Workspace,
    name: str,
    state: ModelRun,
    note: Progress,
    lock: threading.Lock,
    *,
    break_lease: bool = False,
) -> None:
    """Build, train, test and deploy one model; each step done, cached, failed or skipped."""
    from modelci.deploy import open_deployer
    from modelci.deploy.ahead import Ahead, start_ahead
    from modelci.deploy.rollout import deploy
    from modelci.envs.uv import ensure_environment
    from modelci.testing.report import describe_failure, failure_causes
    from modelci.testing.runner import test_version, tests_passed
    from modelci.train.lease import LeaseHeld, wait_for
    from modelci.train.outcome import TrainOptions, version_name
    from modelci.train.runner import train_model

    def skip_rest(after: str) -> None:
        for step in STEPS[STEPS.index(after) + 1 :]:
            state.steps[step] = "skipped"

    step = "build"
    ahead: Ahead | None = None
    try:
        spec = workspace.model(name)
        state.steps["build"] = "running"
        environment = ensure_environment(workspace.root, spec, progress=note)
        state.steps["build"] = "cached" if environment.cached else "done"
        # the host starts a spare of the version while it trains: its deploy skips a cold start
        head = git.resolve(workspace.root, "HEAD")
        if head is not None:
            version = version_name(name, head)
            ahead = start_ahead(workspace, spec, version, head)
        with workspace.lazy_registry() as registry:  # opened once the training job runs
            step = "train"
            state.steps["train"] = "running"
            # reproducibility compares this training with a second run started beside it
            options = TrainOptions(break_lease=break_lease, rerun=True)

            def on_line(line: str) -> None:  # CI logs show each job's log, prefixed
                note(f"{name} | {line}")

            try:
                outcome = train_model(
                    workspace, registry, name, options, note=note, on_line=on_line
                )
            except LeaseHeld as held:  # another pipeline trains it now: use its result
                state.version = held.version
                waited = wait_for(registry, held.version, note)
                if waited is not None and waited.status == "failed":
                    state.steps["train"] = "failed"
                    state.error = "another pipeline trained it, and failed: " + str(
                        waited.details.get("reason") or "see `modelci status`"
                    )
                    skip_rest("train")
                    return
                outcome = train_model(
                    workspace, registry, name, options, note=note, on_line=on_line
                )
            rerun = outcome.rerun
            state.version = outcome.version
            if outcome.status != "ready":
                state.steps["train"] = "failed"
                state.error = outcome.reason
                skip_rest("train")
                return
            state.steps["train"] = "cached" if outcome.cached or outcome.reused_from else "done"
            record = registry.get_version(outcome.version)
            assert record is not None
            state.metrics = dict(record.metrics)
            step = "test"
            state.steps["test"] = "running"
            if tests_passed(record) is True:
                state.steps["test"] = "cached"
            else:
                try:
                    report = test_version(workspace, registry, spec, record, note=note, rerun=rerun)
                finally:
                    if rerun is not None:
                        rerun.discard()  # ended already, unless the test step failed first
                if not report.passed:
                    state.steps["test"] = "failed"
                    failed = failure_causes([c.to_json() for c in report.checks])
                    state.error = "checks failed: " + "; ".join(map(describe_failure, failed))
                    skip_rest("test")
                    return
                state.steps["test"] = "done"
            step = "deploy"
            state.steps["deploy"] = "running"
            with lock:  # one deploy at a time: they share the endpoint host
                result = deploy(
                    workspace,
                    registry,
                    open_deployer(workspace),
                    name,
                    workspace.environments[0],
                    version=outcome.version,
                    note=note,
                )
            if result.status == "unchanged":
                state.steps["deploy"] = "cached"
            elif result.status == "deployed":
                state.steps["deploy"] = "done"
            else:
                state.steps["deploy"] = "failed"
                state.error = result.reason
    except ModelciError as error:
        state.steps[step] = "failed"
        state.error = error.render()
        state.exception = error
        skip_rest(step)
    except Exception as error:  # one model's surprise must not stop the others
        state.steps[step] = "failed"
        state.error = f"{step} failed unexpectedly: {type(error).__name__}: {error}"
        state.exception = error
        skip_rest(step)
    finally:
        if ahead is not None and state.steps["deploy"] != "done":
            ahead.withdraw()  # not deployed: its spare is not wanted


def last_deployed_commit(workspace: Workspace) -> str | None:
    """The commit of the version last deployed to the first environment, if the registry has
    one: where `run` and `changed` compare from when no base is given."""
    if not workspace.registry_exists():
        return None
    with workspace.registry() as registry:
        return registry.last_deployed_commit(workspace.environments[0])


def deployed_commits(workspace: Workspace) -> dict[str, str]:
    """Each model's commit of its version last deployed to the first environment: where `run`
    and `changed` compare that model from when no base is given (none: it is built)."""
    from modelci.registry.quick import quick_look

    if not workspace.registry_exists():
        return {}
    # an SQLite registry answers through sqlite3: SQLAlchemy's import waits until the first
    # training job has started
    look = quick_look(workspace.project_url("registry"), workspace.root)
    if look is not None:
        try:
            return look.deployed_commits(workspace.environments[0])
        finally:
            look.close()
    with workspace.registry() as registry:
        return registry.deployed_commits(workspace.environments[0])


def finish_leftovers(workspace: Workspace, note: Progress) -> None:
    """Mark failed the versions a killed pipeline left `training` (its lease dead) and finish
    the deploys a killed command left pending. An SQLite registry is asked through sqlite3
    first whether there is any: SQLAlchemy's import waits until the first training job has
    started."""
    from modelci.registry.quick import quick_look

    if not workspace.registry_exists():
        return
    look = quick_look(workspace.project_url("registry"), workspace.root)
    if look is not None:
        try:
            if not look.unfinished():
                return
        finally:
            look.close()
    from modelci.deploy.recovery import finish_all_interrupted
    from modelci.train.lease import reap_interrupted

    with workspace.registry() as registry:
        reap_interrupted(registry, note)
        finish_all_interrupted(workspace, registry, note)


def run_pipeline(
    workspace: Workspace,
    *,
    base: str | None,
    jobs: int,
    note: Progress,
    on_change: Callable[[list[ModelRun]], None] | None = None,
    break_lease: bool = False,
) -> tuple[str, list[ModelRun]]:
    """The merge pipeline for every model the commit range touches; first, what a killed
    command left is finished: its versions stuck `training` marked failed (to be trained
    again), its deploys settled or put back."""
    from modelci.changes import detect

    finish_leftovers(workspace, note)
    report = detect(
        workspace.root,
        base=base,
        deployed=(lambda _h: deployed_commits(workspace)) if base is None else None,
    )
    retired = retire_deleted(workspace, report.deleted, report.head, note)
    runs = [ModelRun(entry.model) for entry in report.changed]
    if not runs:
        return report.head, retired
    broken = {entry.model: entry.error for entry in report.changed if entry.error}
    for state in runs:
        if state.model in broken:  # its spec at head is bad: its row fails, no other
            state.error = broken[state.model]
            state.steps = dict.fromkeys(STEPS, "skipped") | {"build": "failed"}
    deploy_lock = threading.Lock()
    if on_change:
        on_change(runs)  # every model, pending

    def one(state: ModelRun) -> None:
        if state.error:
            return
        run_model(workspace, state.model, state, note, deploy_lock, break_lease=break_lease)
        if on_change:
            on_change(runs)

    if jobs <= 1:
        for state in runs:
            one(state)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, runs))
    return report.head, runs + retired


def retire_deleted(
    workspace: Workspace, deleted: list[str], head: str, note: Progress
) -> list[ModelRun]:
    """Stop the endpoints of every model whose folder the range deleted (and that no folder
    of the work tree claims again): each one's pointers cleared, with a `retire` event."""
    from modelci.deploy import open_deployer
    from modelci.deploy.retire import retire

    kept = {m.name for m in workspace.readable_models[0]}
    gone = [name for name in deleted if name not in kept]
    if not gone or not workspace.registry_exists():
        return []
    runs: list[ModelRun] = []
    with workspace.registry() as registry:
        for name in gone:
            if not any(registry.get_pointer(name, e) for e in workspace.environments):
                continue  # nothing serves it (retired before, or never deployed); aliases stay
            state = ModelRun(name, steps={**dict.fromkeys(STEPS, "skipped"), "deploy": "retired"})
            try:
                undone = retire(
                    workspace, registry, open_deployer(workspace), name, commit=head, note=note
                )
                state.version = undone[0].previous_version if undone else None
            except ModelciError as error:
                state.steps["deploy"] = "failed"
                state.error, state.exception = f"retire: {error.render()}", error
            runs.append(state)
    return runs


# --- release ---------------------------------------------------------------------------------


def tag_commit(workspace: Workspace, tag: str) -> str:
    """The commit a tag names (annotated or lightweight), which must be on the main branch."""
    # `v1^` or `v1~2` would resolve to another commit: the name must be a tag as it stands
    exists = git.ref_exists(workspace.root, f"refs/tags/{tag}")
    commit = git.resolve(workspace.root, f"refs/tags/{tag}") if exists else None
    if commit is None:
        raise ConfigError(f"no tag {tag!r} in this repository (git tag --list)")
    main = workspace.project.project.main
    refs = [
        ref
        for ref in (f"refs/heads/{main}", f"refs/remotes/origin/{main}")
        if git.resolve(workspace.root, ref)
    ]
    if not refs:
        raise ConfigError(
            f"the main branch {main!r} is not in this repository: name the branch releases "
            f"come from in modelci.toml ([project] main = ...) or MODELCI_PROJECT_MAIN, "
            f"or create it (git branch {main})",
            file="modelci.toml",
            key="project.main",
        )
    if not any(git.is_ancestor(workspace.root, commit, ref) for ref in refs):
        raise ConfigError(
            f"tag {tag!r} names {commit[:12]}, which is not on {main}: releases "
            f"come from {main} ([project].main)"
        )
    return commit


def version_to_release(
    workspace: Workspace, registry: Registry, model: str, commit: str
) -> VersionRecord | None:
    """The newest ready version, built from `commit` or one of its ancestors, whose tests
    passed and whose fingerprint is that of the model's content at `commit`, tested with the
    gates, [tests] and golden file `commit` has: never one whose tests failed (a broken commit
    since reverted), never one of other content or judged by other checks."""
    from modelci.testing.runner import tests_passed
    from modelci.train.fastpath import checks_at, fingerprint_at

    wanted, checks = fingerprint_at(workspace, model, commit), checks_at(workspace, model, commit)
    for record in registry.list_versions(model):
        if record.status != "ready" or record.details.get("dirty"):
            continue
        if record.commit == commit and tests_passed(record) is False:
            return None  # tested with the tag's own gates, and failed them
        if record.fingerprint != wanted or tests_passed(record) is not True:
            continue
        if record.details["tests"].get("checks_digest") not in (None, checks):
            continue  # passed other gates than the tag's
        if record.commit == commit or git.is_ancestor(workspace.root, record.commit, commit):
            return record
    return None


def release(
    workspace: Workspace, tag: str, note: Progress, *, force: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """Deploy to production, for every model, the version in force at the tagged commit;
    `force`: although a gate of the move refuses it (recorded with the release)."""
    from modelci.changes import SpecCache, snapshot
    from modelci.deploy import open_deployer
    from modelci.deploy.rollout import deploy

    commit = tag_commit(workspace, tag)
    production = workspace.environments[-1]
    # the tagged commit's models, not the work tree's: one added since is not in this release
    tagged = snapshot(workspace.root, commit, SpecCache(workspace.root), os.environ).by_name()
    results: list[dict[str, Any]] = []
    with workspace.registry() as registry:
        deployer = open_deployer(workspace)
        for name in sorted(tagged):
            spec = tagged[name]
            pointer = registry.get_pointer(spec.name, production)
            previous = pointer.version if pointer else None
            if spec.error:  # a bad spec at the tag: this model fails, the others go on
                results.append(
                    {
                        "model": spec.name,
                        "version": None,
                        "previous_version": previous,
                        "status": "failed",
                        "reason": spec.error,
                    }
                )
                continue
            reason: str | None
            try:
                record = version_to_release(workspace, registry, spec.name, commit)
            except ModelciError as error:
                record, reason = None, error.render()
            else:
                reason = (
                    f"no version of {spec.name} with its content at {tag} ({commit[:12]}) "
                    "passed its tests: run `modelci run` on that commit, or "
                    f"`modelci train {spec.name} --rev {tag} && modelci test {spec.name}`"
                )
            if record is None:
                results.append(
                    {
                        "model": spec.name,
                        "version": None,
                        "previous_version": previous,
                        "status": "missing",
                        "reason": reason,
                    }
                )
                continue
            try:
                outcome = deploy(
                    workspace,
                    registry,
                    deployer,
                    spec.name,
                    production,
                    version=record.version,
                    force=force,
                    kind="release",
                    tag=tag,
                    note=note,
                )
                status, reason = outcome.status, outcome.reason
            except ModelciError as error:
                status, reason = "failed", error.render()
            results.append(
                {
                    "model": spec.name,
                    "version": record.version,
                    "previous_version": previous,
                    "status": status,
                    "reason": reason,
                }
            )
    return commit, results
