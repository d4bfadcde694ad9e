"""The registry's part of training: reuse a version with the same fingerprint, or take the
version's lease, run the job (unless already running), and record how it ended; a store that
names versions tags the artifact first."""

from __future__ import annotations

import csv
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.errors import VersionExists
from modelci.progress import Progress
from modelci.registry.base import UPDATABLE, Event, Registry, VersionRecord
from modelci.runtime.jobdir import JobDir
from modelci.train import lease
from modelci.train.artifacts import pack, parse_metrics
from modelci.train.base import JobResult, StartedJob, Trainer
from modelci.train.jobs import prepare_job
from modelci.train.outcome import TrainOptions, TrainOutcome, outcome
from modelci.train.signature import SignatureRecorder, record_signature, sign_in_job
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.envs.uv import Environment
    from modelci.spec import ModelSpec
    from modelci.store.base import Store


@dataclass(frozen=True)
class Attempt:
    """One model's training as decided so far: which version of which spec, its fingerprint
    and environment, where its job runs and on which backend, and who asks."""

    workspace: Workspace
    spec: ModelSpec
    commit: str
    version: str
    fingerprint: str
    environment: Environment
    options: TrainOptions
    trainer: Trainer
    job_root: Path
    actor: str
    ci_url: str | None
    note: Progress
    on_line: Progress | None = None
    # the job's own record (SignedInJob), or a process loading the libraries beside the job
    # (SignatureJob); None: a process of its own records it after the job
    signature: SignatureRecorder | None = None

    @property
    def model(self) -> str:
        return self.spec.name

    def event(self, kind: str, details: dict[str, Any]) -> Event:
        """An event about this version."""
        return Event(
            kind=kind,
            model=self.model,
            version=self.version,
            commit=self.commit,
            actor=self.actor,
            ci_url=self.ci_url,
            details=details,
        )


def reuse_record(
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
        details={
            "reused_from": match.version,
            "dirty": dirty,
            # the same fingerprint: the same model folder and lock, so the same bundle
            **{k: match.details[k] for k in ("serving", "data_statistics") if k in match.details},
        },
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


def record_reuse(
    attempt: Attempt, registry: Registry, match: VersionRecord, existing: VersionRecord | None
) -> TrainOutcome:
    """Record the version on the artifact of `match`, which has the same fingerprint."""
    attempt.note(f"{attempt.version}: reused from {match.version} (same fingerprint)")
    record, event = reuse_record(
        attempt.workspace,
        attempt.model,
        attempt.version,
        attempt.commit,
        attempt.fingerprint,
        match,
        attempt.environment.lock_hash,
        dirty=attempt.options.dirty,
    )
    if existing is None:
        record = registry.add_version(record)
    else:
        record = registry.update_version(attempt.version, **_fields(record))
    registry.append_event(event)
    return outcome(record, reused_from=match.version)


def train_recorded(
    attempt: Attempt, registry: Registry, running: StartedJob | None
) -> TrainOutcome:
    """The registry's part of training: reuse, lease, the job (unless already `running`) and
    the record of how it ended."""
    version, options = attempt.version, attempt.options
    existing = registry.get_version(version)
    if existing is not None and existing.status == "ready" and not options.force:
        attempt.note(f"{version}: already trained")
        return outcome(existing, cached=True)
    if not options.force:
        match = registry.find_by_fingerprint(attempt.model, attempt.fingerprint)
        if match is not None and match.version != version:
            return record_reuse(attempt, registry, match, existing)

    taken = _take_lease(attempt, registry, existing)
    with lease.renewed(registry, version):
        if running is not None:
            result = running.wait()
        else:
            attempt.note(
                f"{version}: training in {attempt.job_root.relative_to(attempt.workspace.root)}"
            )
            job = prepare_job(
                attempt.workspace,
                attempt.spec,
                None if options.dirty else attempt.commit,
                attempt.environment.python,
                attempt.job_root,
                sample=False,
            )
            if attempt.trainer.signs_in_job:  # its own process records it
                job, signature = sign_in_job(job, attempt.workspace.state_dir, attempt.spec)
                attempt = dataclasses.replace(attempt, signature=signature)
            result = attempt.trainer.run(job, attempt.on_line)
    return _record_result(attempt, registry, result, existing, taken)


def _take_lease(attempt: Attempt, registry: Registry, existing: VersionRecord | None) -> str | None:
    """Record the version as training under a new lease; the holder whose lease it took
    over, if any."""
    version = attempt.version
    started = VersionRecord(
        version=version,
        model=attempt.model,
        commit=attempt.commit,
        status="training",
        fingerprint=attempt.fingerprint,
        lock_hash=attempt.environment.lock_hash,
        actor=attempt.actor,
        ci_url=attempt.ci_url,
        details={"dirty": attempt.options.dirty, "lease": lease.new_lease()},
    )
    if existing is None:
        try:
            registry.add_version(started)
            return None
        except VersionExists:  # another pipeline created it a moment ago
            existing = registry.get_version(version)
            if existing is None:
                raise
    if existing.status == "ready":
        return None
    taken = lease.check(existing, break_lease=attempt.options.break_lease)
    if taken:
        attempt.note(f"{version}: taking over the training lease of {taken}")
    registry.update_version(
        version,
        status="training",
        fingerprint=attempt.fingerprint,
        lock_hash=attempt.environment.lock_hash,
        details={**started.details, "lease_taken_from": taken},
    )
    return taken


def _record_result(
    attempt: Attempt,
    registry: Registry,
    result: JobResult,
    existing: VersionRecord | None,
    taken: str | None,
) -> TrainOutcome:
    """Store the log (and the model, on success) and record how the job ended."""
    version, job_root = attempt.version, attempt.job_root
    store = attempt.workspace.store()
    log_artifact = store.put_file(result.log_path)
    details = {
        "dirty": attempt.options.dirty,
        "duration_s": round(result.duration_s, 3),
        "job_dir": str(job_root),
        "log_sha256": log_artifact.sha256,
        "env_hash": attempt.environment.env_hash,
        "lease_taken_from": taken,
        "returncode": result.returncode,
        "hyperparameters": dict(attempt.spec.train.hyperparameters),
        **result.details,
    }
    if not result.succeeded:
        details |= {"reason": result.reason, "timed_out": result.timed_out}
        if existing is None or existing.status != "ready":
            registry.update_version(version, status="failed", details=details)
        registry.append_event(
            attempt.event("train_failed", {"reason": result.reason, "timed_out": result.timed_out})
        )
        return TrainOutcome(
            attempt.model,
            version,
            attempt.commit,
            "failed",
            duration_s=details["duration_s"],
            reason=result.reason,
            job_dir=str(job_root),
        )

    # the training data's statistics are read here while the model's own process records its
    # signature
    pool = ThreadPoolExecutor(max_workers=1)
    statistics = pool.submit(_record_statistics, attempt, store, details)
    try:
        if attempt.signature is not None:
            problem = attempt.signature.record()
        else:
            problem = record_signature(
                attempt.workspace.state_dir,
                attempt.environment.python,
                attempt.spec,
                JobDir(job_root),
            )
    finally:
        pool.shutdown()
    statistics.result()  # what failed there fails the version's record, as it would here
    if problem is not None:
        attempt.note(f"{version}: no input signature recorded: {problem}")
    from modelci.bundle import store_bundle

    details["serving"] = store_bundle(
        attempt.workspace,
        attempt.spec,
        None if attempt.options.dirty else attempt.commit,
        attempt.environment.lock_path,
    )
    archive = pack(JobDir(job_root).model, job_root / "output" / "model.tar.gz")
    artifact = store.put_file(archive)
    metrics = {
        **parse_metrics(
            result.log_path.read_text(errors="replace"), dict(attempt.spec.train.metrics)
        ),
        **result.metrics,
    }
    tag_in_store(
        store, attempt.model, version, attempt.commit, attempt.fingerprint, metrics, artifact.sha256
    )
    record = registry.update_version(
        version,
        status="ready",
        fingerprint=attempt.fingerprint,
        artifact_uri=artifact.uri,
        artifact_sha256=artifact.sha256,
        metrics=metrics,
        lock_hash=attempt.environment.lock_hash,
        details=details,
    )
    registry.append_event(attempt.event("train", {"artifact_sha256": artifact.sha256}))
    return outcome(record, job_dir=str(job_root))


def _record_statistics(attempt: Attempt, store: Store, details: dict[str, Any]) -> None:
    """The training data's statistics, for `modelci drift`; a channel that cannot be read as
    a table leaves none, and says why, without failing the version."""
    from modelci.monitor.datastats import store_statistics

    try:
        entry = store_statistics(store, attempt.spec, JobDir(attempt.job_root).input_data)
    except (OSError, ValueError, csv.Error) as error:
        attempt.note(f"{attempt.version}: no training-data statistics recorded: {error}")
        return
    if entry is not None:
        details["data_statistics"] = entry


def tag_in_store(
    store: Store,
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
    from modelci.store.base import version_annotations

    store.tag_version(
        sha256, version, version_annotations(model, version, commit, fingerprint, metrics, sha256)
    )


def _fields(record: VersionRecord) -> dict[str, Any]:
    """What `update_version` may change, as the record has it."""
    return {k: getattr(record, k) for k in UPDATABLE}
