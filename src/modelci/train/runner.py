"""`modelci train`: from a clean export of a commit to a recorded version.

For each model: read its spec at the commit, check the job's inputs, build (or reuse) its
environment, compute the fingerprint, and then either reuse a version with the same
fingerprint or run the job, pack `model/` as model.tar.gz, store it and record the version.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci import git
from modelci.errors import ConfigError, NotBuiltYet
from modelci.fingerprint import file_digests, fingerprint
from modelci.registry.base import Event, Registry, VersionRecord
from modelci.settings import MODEL_FILE
from modelci.train import lease
from modelci.train.artifacts import pack, parse_metrics
from modelci.train.base import JobResult, Trainer, TrainingJob
from modelci.train.jobdir import JobDir, add_channel, write_config
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.spec import ModelSpec

Note = Callable[[str], None]


@dataclass
class TrainOutcome:
    """What `train` did for one model."""

    model: str
    version: str
    commit: str
    status: str  # ready | failed
    cached: bool = False
    reused_from: str | None = None
    artifact: dict[str, str] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    reason: str | None = None
    recorded: bool = True
    job_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "commit": self.commit,
            "status": self.status,
            "cached": self.cached,
            "reused_from": self.reused_from,
            "artifact": self.artifact,
            "metrics": self.metrics,
            "duration_s": self.duration_s,
            "reason": self.reason,
            "recorded": self.recorded,
            "job_dir": self.job_dir,
        }


@dataclass(frozen=True)
class TrainOptions:
    rev: str = "HEAD"
    dirty: bool = False
    force: bool = False
    sample: bool = False
    break_lease: bool = False


def version_name(model: str, commit: str, *, dirty: bool = False) -> str:
    """`<model>-<sha12>`; a dirty work tree's version says so."""
    return f"{model}-{commit[:12]}" + ("-dirty" if dirty else "")


def spec_at(workspace: Workspace, name: str, commit: str, dirty: bool) -> ModelSpec:
    """The model's spec as the commit (or, with --dirty, the work tree) has it."""
    from modelci.spec import find_model, read_model
    from modelci.speccache import SpecCache

    current = find_model(workspace.models, name)
    if dirty:
        return current
    spec_file = f"{current.folder}/{MODEL_FILE}"
    tree = git.tree_blobs(workspace.root, commit)
    if spec_file not in tree:
        raise ConfigError(
            f"model {name!r} has no {spec_file} at commit {commit[:12]}: commit it first, or "
            "train the work tree with --dirty"
        )
    blob = tree[spec_file]
    cache = SpecCache(workspace.root)
    try:
        text = git.read_blobs(workspace.root, [blob])[blob]
        return read_model(current.folder, blob, text, spec_file, cache)
    finally:
        cache.save()


def check_inputs(spec: ModelSpec, files: set[str]) -> None:
    """Everything the job reads must exist before it starts: exit 2 naming the key."""
    if f"{spec.folder}/{spec.train.entrypoint}" not in files:
        raise ConfigError(
            f"entry point {spec.train.entrypoint!r} does not exist in {spec.folder}/",
            file=spec.spec_file,
            key="train.entrypoint",
        )
    for name, source in spec.train.channels.items():
        if "://" in source:
            if not source.startswith("file://"):
                raise NotBuiltYet(
                    f"channel URI {source!r}: the local backend reads repository paths and "
                    "file:// URIs; other schemes are not built yet",
                    file=spec.spec_file,
                    key=f"train.channels.{name}",
                )
            if not Path(source[len("file://") :]).exists():
                raise ConfigError(
                    f"{source!r} does not exist", file=spec.spec_file, key=f"train.channels.{name}"
                )
            continue
        path = source.strip("/")
        if path not in files and not any(f.startswith(path + "/") for f in files):
            raise ConfigError(
                f"channel path {source!r} does not exist in the repository",
                file=spec.spec_file,
                key=f"train.channels.{name}",
            )


def export(root: Path, commit: str | None, paths: list[str], destination: Path) -> None:
    """A clean copy of `paths` as the commit has them (or as the work tree has them)."""
    destination.mkdir(parents=True, exist_ok=True)
    if commit is None:
        for path in paths:
            source = root / path
            target = destination / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(
                    source,
                    target,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".modelci"),
                )
            else:
                shutil.copy2(source, target)
        return
    data = git.run(root, "archive", "--format=tar", commit, "--", *paths)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(destination, filter="data")


def lay_out_job(
    workspace: Workspace, spec: ModelSpec, commit: str | None, job: JobDir, *, sample: bool
) -> list[str]:
    """Make the job folder: the model folder as code, channels under input/data."""
    job.create()
    repo_channels = {n: s.strip("/") for n, s in spec.train.channels.items() if "://" not in s}
    with tempfile.TemporaryDirectory(dir=job.root.parent) as scratch:
        exported = Path(scratch)
        export(workspace.root, commit, [spec.folder, *repo_channels.values()], exported)
        shutil.copytree(exported / spec.folder, job.code, dirs_exist_ok=True)
        for name, source in spec.train.channels.items():
            path = (
                exported / repo_channels[name]
                if name in repo_channels
                else Path(source[len("file://") :])
            )
            if sample:
                from modelci.testing.sampling import sample_channel

                settings = spec.train.sample
                if settings is None:
                    raise ConfigError(
                        "--sample needs a [train].sample section",
                        file=spec.spec_file,
                        key="train.sample",
                    )
                target = job.channel(name) / path.name if path.is_file() else job.channel(name)
                sample_channel(
                    path, target, fraction=settings.fraction, key=settings.key, seed=spec.train.seed
                )
            else:
                add_channel(job, name, path)
    write_config(job, dict(spec.train.hyperparameters), list(spec.train.channels))
    return list(spec.train.channels)


# `[train].backend` -> "module:Class", imported only when chosen; each takes the workspace
_TRAINERS = {
    "local": "modelci.train.local:LocalTrainer",
    "ray": "modelci.train.ray:RayTrainer",
    "sagemaker": "modelci.train.sagemaker:SageMakerTrainer",
}


def trainer_for(workspace: Workspace) -> Trainer:
    """The training backend the settings name (a backend may check its settings here)."""
    import importlib

    backend = workspace.project.train.backend
    if backend not in _TRAINERS:
        raise NotBuiltYet(
            f"the {backend!r} training backend is not built yet",
            file="modelci.toml",
            key="train.backend",
        )
    module, name = _TRAINERS[backend].split(":")
    trainer_class = getattr(importlib.import_module(module), name)
    trainer: Trainer = trainer_class() if backend == "local" else trainer_class(workspace)
    return trainer


def prepare_job(
    workspace: Workspace,
    spec: ModelSpec,
    commit: str | None,
    python: Path,
    job_root: Path,
    *,
    sample: bool,
) -> TrainingJob:
    """Lay out one job's folder; the job as a backend runs it."""
    job = JobDir(job_root)
    channels = lay_out_job(workspace, spec, commit, job, sample=sample)
    return TrainingJob(
        name=job_root.name,
        job=job,
        python=python,
        entrypoint=spec.train.entrypoint,
        hyperparameters=dict(spec.train.hyperparameters),
        channels=channels,
        seed=spec.train.seed,
        timeout=spec.train.timeout,
        metrics=dict(spec.train.metrics),
        resources=spec.train.resources.asked(),
    )


def run_job(
    workspace: Workspace,
    spec: ModelSpec,
    commit: str | None,
    python: Path,
    job_root: Path,
    *,
    sample: bool,
    on_line: Note | None,
    trainer: Trainer | None = None,
) -> JobResult:
    """Lay out and run one job (on `trainer`, else the one the settings name)."""
    training = prepare_job(workspace, spec, commit, python, job_root, sample=sample)
    result: JobResult = (trainer or trainer_for(workspace)).run(training, on_line)
    return result


def _fresh(workspace: Workspace, model: str, version: str, fingerprint: str, force: bool) -> bool:
    """Whether an SQLite registry already says, without SQLAlchemy, that this version must be
    trained (no record, or a failed one, and no version with its fingerprint); False when in
    doubt, and the full bookkeeping decides."""
    from modelci.registry.quick import quick_look

    look = quick_look(workspace.project_url("registry"), workspace.root)
    if look is None:
        return False
    try:
        status = look.version_status(version)
        if force:  # trained anyway, unless another pipeline trains it now (its lease decides)
            return status != "training"
        if status not in (None, "failed"):
            return False
        return look.ready_with_fingerprint(model, fingerprint) is None
    finally:
        look.close()


def _job_root(workspace: Workspace, version: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    root = workspace.state_dir / "jobs" / f"{version}-{stamp}"
    suffix = 1
    while root.exists():
        suffix += 1
        root = root.with_name(f"{version}-{stamp}-{suffix}")
    root.parent.mkdir(parents=True, exist_ok=True)
    return root


def _validated_inputs(workspace: Workspace, name: str, commit: str) -> tuple[Any, Any] | None:
    """The model's ModelRef and FingerprintInputs at the commit, from the spec cache (spec.py
    validates a blob not seen yet); None when no model has that name there. An invalid spec
    is its ConfigError, as `validate` reports it."""
    import os

    from modelci.changes import SpecCache, snapshot
    from modelci.envs.uv import ModelRef
    from modelci.fingerprint import FingerprintInputs

    cache = SpecCache(workspace.root)
    entry = snapshot(workspace.root, commit, cache, os.environ).by_name().get(name)
    cache.save()
    if entry is None:
        return None
    spec_file = f"{entry.folder}/{MODEL_FILE}"
    facts = cache.facts(git.tree_blobs(workspace.root, commit)[spec_file], spec_file)
    return (
        ModelRef(name, entry.folder, facts.requirements),
        FingerprintInputs(
            entry.folder,
            facts.depends_on,
            facts.channels,
            facts.hyperparameters,
            facts.seed,
            facts.entrypoint,
        ),
    )


def _cache_hit(workspace: Workspace, name: str, commit: str, note: Note) -> TrainOutcome | None:
    """A version already trained, or one with the same fingerprint, told and (on an SQLite
    registry) recorded without pydantic or SQLAlchemy: a fingerprint match means model.toml
    is byte for byte one that was validated when that version trained. None when in doubt
    (and the validated path decides)."""
    from modelci.envs.uv import ensure_environment
    from modelci.registry.quick import quick_look

    look = quick_look(workspace.project_url("registry"), workspace.root)
    if look is None:
        return None
    try:
        raw = _validated_inputs(workspace, name, commit)
        if raw is None:
            return None
        ref, inputs = raw
        version = version_name(name, commit)
        existing = look.version(version)
        environment = ensure_environment(workspace.root, ref)
        if existing is not None:
            if existing.status != "ready":
                return None
            note(f"{version}: already trained")
            return _outcome(existing, cached=True)
        print_ = fingerprint(
            git.tree_blobs(workspace.root, commit),
            inputs,
            shared=workspace.project_shared(),
            lock_hash=environment.lock_hash,
        )
        found = look.ready_with_fingerprint(name, print_)
        match = None if found in (None, version) else look.version(found)
    finally:
        look.close()
    if match is None or match.status != "ready":
        return None
    from modelci.registry.quick import add_reused_version

    record, event = _reuse(
        workspace, name, version, commit, print_, match, environment.lock_hash, dirty=False
    )
    stored = add_reused_version(
        workspace.project_url("registry"), workspace.root, record, event, match
    )
    if stored is None:  # the registry changed meanwhile: the validated path decides afresh
        return None
    note(f"{version}: reused from {match.version} (same fingerprint)")
    return _outcome(stored, reused_from=match.version)


def _reuse(
    workspace: Workspace,
    model: str,
    version: str,
    commit: str,
    print_: str,
    match: VersionRecord,
    lock_hash: str,
    *,
    dirty: bool,
) -> tuple[VersionRecord, Event]:
    """`version` as recorded on the artifact of `match` (same fingerprint), and its event; a
    store that names versions tags the artifact first."""
    if match.artifact_sha256:
        tag_in_store(
            workspace.store(), model, version, commit, print_, match.metrics, match.artifact_sha256
        )
    actor, ci_url = workspace.actor(), workspace.ci_url()
    record = VersionRecord(
        version=version,
        model=model,
        commit=commit,
        status="ready",
        fingerprint=print_,
        artifact_uri=match.artifact_uri,
        artifact_sha256=match.artifact_sha256,
        metrics=dict(match.metrics),
        lock_hash=lock_hash,
        actor=actor,
        ci_url=ci_url,
        details={"reused_from": match.version, "dirty": dirty},
    )
    event = Event(
        kind="train",
        model=model,
        version=version,
        commit=commit,
        actor=actor,
        ci_url=ci_url,
        details={"reused_from": match.version},
    )
    return record, event


def _record_reuse(
    workspace: Workspace,
    registry: Registry,
    model: str,
    version: str,
    commit: str,
    print_: str,
    match: VersionRecord,
    lock_hash: str,
    *,
    existing: VersionRecord | None,
    dirty: bool,
    note: Note,
) -> TrainOutcome:
    """Record `version` on the artifact of `match`, which has the same fingerprint."""
    note(f"{version}: reused from {match.version} (same fingerprint)")
    record, event = _reuse(workspace, model, version, commit, print_, match, lock_hash, dirty=dirty)
    if existing is None:
        record = registry.add_version(record)
    else:
        record = registry.update_version(version, **_fields(record))
    registry.append_event(event)
    return _outcome(record, reused_from=match.version)


def train_model(
    workspace: Workspace,
    registry: Registry,
    name: str,
    options: TrainOptions,
    *,
    note: Note,
    on_line: Note | None = None,
) -> TrainOutcome:
    """Train one model (or reuse what is already trained) and record the version."""
    from modelci.envs.uv import ensure_environment

    commit = git.resolve(workspace.root, options.rev)
    if commit is None:
        raise ConfigError(f"--rev {options.rev!r} does not name a commit of this repository")
    if not (options.force or options.dirty or options.sample):
        hit = _cache_hit(workspace, name, commit, note)
        if hit is not None:
            return hit
    spec = spec_at(workspace, name, commit, options.dirty)
    files = workspace.files() if options.dirty else list(git.tree_blobs(workspace.root, commit))
    check_inputs(spec, set(files))
    environment = ensure_environment(workspace.root, spec, progress=note)
    tree = (
        file_digests(workspace.root, files)
        if options.dirty
        else git.tree_blobs(workspace.root, commit)
    )
    print_ = fingerprint(
        tree, spec, shared=workspace.project.project.shared, lock_hash=environment.lock_hash
    )
    version = version_name(spec.name, commit, dirty=options.dirty)
    actor, ci_url = workspace.actor(), workspace.ci_url()

    if options.sample:  # a quick run on the sample: nothing is recorded
        job_root = _job_root(workspace, version + "-sample")
        result = run_job(
            workspace,
            spec,
            None if options.dirty else commit,
            environment.python,
            job_root,
            sample=True,
            on_line=on_line,
        )
        metrics = parse_metrics(
            result.log_path.read_text(errors="replace"), dict(spec.train.metrics)
        )
        return TrainOutcome(
            spec.name,
            version,
            commit,
            "ready" if result.succeeded else "failed",
            metrics=metrics,
            duration_s=round(result.duration_s, 3),
            reason=result.reason,
            recorded=False,
            job_dir=str(job_root),
        )

    trainer = trainer_for(workspace)  # bad backend settings stop here, before any record
    job_root = _job_root(workspace, version)
    running: Any = None
    if hasattr(trainer, "start") and _fresh(workspace, spec.name, version, print_, options.force):
        # the job starts now; the registry (and SQLAlchemy's import) is dealt with meanwhile
        note(f"{version}: training in {job_root.relative_to(workspace.root)}")
        running = trainer.start(
            prepare_job(
                workspace,
                spec,
                None if options.dirty else commit,
                environment.python,
                job_root,
                sample=False,
            ),
            on_line,
        )
    try:
        return _train_recorded(
            workspace,
            registry,
            spec,
            commit,
            version,
            print_,
            environment,
            options,
            trainer,
            job_root,
            running,
            actor=actor,
            ci_url=ci_url,
            note=note,
            on_line=on_line,
        )
    finally:  # the registry decided otherwise (another pipeline won a race), or an error
        if running is not None and running.process.poll() is None:
            running.kill()


def _train_recorded(
    workspace: Workspace,
    registry: Registry,
    spec: ModelSpec,
    commit: str,
    version: str,
    print_: str,
    environment: Any,
    options: TrainOptions,
    trainer: Trainer,
    job_root: Path,
    running: Any,
    *,
    actor: str,
    ci_url: str | None,
    note: Note,
    on_line: Note | None,
) -> TrainOutcome:
    """The registry's part of training: reuse, lease, the job (unless already running) and
    the record of how it ended."""
    existing = registry.get_version(version)
    if existing is not None and existing.status == "ready" and not options.force:
        note(f"{version}: already trained")
        return _outcome(existing, cached=True)
    if not options.force:
        match = registry.find_by_fingerprint(spec.name, print_)
        if match is not None and match.version != version:
            return _record_reuse(
                workspace,
                registry,
                spec.name,
                version,
                commit,
                print_,
                match,
                environment.lock_hash,
                existing=existing,
                dirty=options.dirty,
                note=note,
            )

    started = VersionRecord(
        version=version,
        model=spec.name,
        commit=commit,
        status="training",
        fingerprint=print_,
        lock_hash=environment.lock_hash,
        actor=actor,
        ci_url=ci_url,
        details={"dirty": options.dirty, "lease": lease.new_lease()},
    )
    taken: str | None = None
    if existing is None:
        try:
            registry.add_version(started)
        except ConfigError:  # another pipeline created it a moment ago
            existing = registry.get_version(version)
            if existing is None:
                raise
    if existing is not None and existing.status != "ready":
        taken = lease.check(existing, break_lease=options.break_lease)
        if taken:
            note(f"{version}: taking over the training lease of {taken}")
        registry.update_version(
            version,
            status="training",
            fingerprint=print_,
            lock_hash=environment.lock_hash,
            details={**started.details, "lease_taken_from": taken},
        )

    with lease.renewed(registry, version):
        if running is not None:
            result = running.wait()
        else:
            note(f"{version}: training in {job_root.relative_to(workspace.root)}")
            result = run_job(
                workspace,
                spec,
                None if options.dirty else commit,
                environment.python,
                job_root,
                sample=False,
                on_line=on_line,
                trainer=trainer,
            )
    store = workspace.store()
    log_artifact = store.put_file(result.log_path)
    details = {
        "dirty": options.dirty,
        "duration_s": round(result.duration_s, 3),
        "job_dir": str(job_root),
        "log_sha256": log_artifact.sha256,
        "env_hash": environment.env_hash,
        "lease_taken_from": taken,
        "returncode": result.returncode,
        **result.details,
    }
    if not result.succeeded:
        details |= {"reason": result.reason, "timed_out": result.timed_out}
        if existing is None or existing.status != "ready":
            registry.update_version(version, status="failed", details=details)
        registry.append_event(
            Event(
                kind="train_failed",
                model=spec.name,
                version=version,
                commit=commit,
                actor=actor,
                ci_url=ci_url,
                details={"reason": result.reason, "timed_out": result.timed_out},
            )
        )
        return TrainOutcome(
            spec.name,
            version,
            commit,
            "failed",
            duration_s=details["duration_s"],
            reason=result.reason,
            job_dir=str(job_root),
        )

    archive = pack(JobDir(job_root).model, job_root / "output" / "model.tar.gz")
    artifact = store.put_file(archive)
    metrics = {
        **parse_metrics(result.log_path.read_text(errors="replace"), dict(spec.train.metrics)),
        **result.metrics,
    }
    tag_in_store(store, spec.name, version, commit, print_, metrics, artifact.sha256)
    record = registry.update_version(
        version,
        status="ready",
        fingerprint=print_,
        artifact_uri=artifact.uri,
        artifact_sha256=artifact.sha256,
        metrics=metrics,
        lock_hash=environment.lock_hash,
        details=details,
    )
    registry.append_event(
        Event(
            kind="train",
            model=spec.name,
            version=version,
            commit=commit,
            actor=actor,
            ci_url=ci_url,
            details={"artifact_sha256": artifact.sha256},
        )
    )
    return _outcome(record, job_dir=str(job_root))


def tag_in_store(
    store: Any,
    model: str,
    version: str,
    commit: str,
    fingerprint: str,
    metrics: dict[str, float],
    sha256: str,
) -> None:
    """A store that names versions (OCI) tags the artifact `<model>-<sha12>`, the version's
    metadata as annotations; before the version is recorded ready, so a failure leaves it not
    ready."""
    if not hasattr(store, "tag_version"):
        return
    from modelci.store.oci import version_annotations

    store.tag_version(
        sha256, version, version_annotations(model, version, commit, fingerprint, metrics, sha256)
    )


def _fields(record: VersionRecord) -> dict[str, Any]:
    return {
        k: getattr(record, k)
        for k in (
            "status",
            "fingerprint",
            "artifact_uri",
            "artifact_sha256",
            "metrics",
            "lock_hash",
            "actor",
            "ci_url",
            "details",
        )
    }


def _outcome(
    record: VersionRecord,
    *,
    cached: bool = False,
    reused_from: str | None = None,
    job_dir: str | None = None,
) -> TrainOutcome:
    artifact = (
        {"uri": record.artifact_uri, "sha256": record.artifact_sha256}
        if record.artifact_uri and record.artifact_sha256
        else None
    )
    return TrainOutcome(
        record.model,
        record.version,
        record.commit,
        record.status,
        cached=cached,
        reused_from=reused_from or record.details.get("reused_from"),
        artifact=artifact,
        metrics=dict(record.metrics),
        duration_s=record.details.get("duration_s"),
        reason=record.details.get("reason"),
        job_dir=job_dir,
    )
