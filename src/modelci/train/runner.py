"""`modelci train`: from a clean export of a commit to a recorded version.

For each model: answer from the registry quickly when it can (`fastpath.py`); else read its
spec at the commit, check the job's inputs, build (or reuse) its environment, compute the
fingerprint, and then either reuse a version with the same fingerprint or run the job (laid
out by `jobs.py`) and record it (`record.py`).
"""

from __future__ import annotations

import dataclasses

from modelci import git
from modelci.errors import ConfigError
from modelci.fingerprint import file_digests, fingerprint
from modelci.progress import Progress
from modelci.registry.base import Registry
from modelci.train import open_trainer
from modelci.train.artifacts import parse_metrics
from modelci.train.base import StartedJob
from modelci.train.fastpath import cache_hit, must_train
from modelci.train.jobs import check_inputs, job_root_for, prepare_job, run_job, spec_at
from modelci.train.outcome import Rerun, TrainOptions, TrainOutcome, version_name
from modelci.train.record import Attempt, train_recorded
from modelci.train.signature import SignatureJob, SignatureRecorder, sign_in_job
from modelci.workspace import Workspace

__all__ = ["train_model"]


def train_model(
    workspace: Workspace,
    registry: Registry,
    name: str,
    options: TrainOptions,
    *,
    note: Progress,
    on_line: Progress | None = None,
) -> TrainOutcome:
    """Train one model (or reuse what is already trained) and record the version."""
    from modelci.envs.uv import ensure_environment

    commit = git.resolve(workspace.root, options.rev)
    if commit is None:
        raise ConfigError(f"--rev {options.rev!r} does not name a commit of this repository")
    if not (options.force or options.dirty or options.sample):
        hit = cache_hit(workspace, name, commit, note)
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
    exported = None if options.dirty else commit

    if options.sample:  # a quick run on the sample: nothing is recorded
        job_root = job_root_for(workspace, version + "-sample")
        result = run_job(
            workspace, spec, exported, environment.python, job_root, sample=True, on_line=on_line
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

    trainer = open_trainer(workspace)  # bad backend settings stop here, before any record
    attempt = Attempt(
        workspace=workspace,
        spec=spec,
        commit=commit,
        version=version,
        fingerprint=print_,
        environment=environment,
        options=options,
        trainer=trainer,
        job_root=job_root_for(workspace, version),
        actor=workspace.actor(),
        ci_url=workspace.ci_url(),
        note=note,
        on_line=on_line,
    )
    running: StartedJob | None = None
    rerun: Rerun | None = None
    try:
        if trainer.starts_in_background and (
            must_train(workspace, spec.name, version, print_, options.force)
            or (options.rerun and _untrained(registry, spec.name, version, print_, options.force))
        ):
            # the job starts now; the registry (and SQLAlchemy's import) is dealt with meanwhile
            note(f"{version}: training in {attempt.job_root.relative_to(workspace.root)}")
            job = prepare_job(
                workspace, spec, exported, environment.python, attempt.job_root, sample=False
            )
            signature: SignatureRecorder | None = None
            if trainer.signs_in_job:  # its own process records it once the script has ended
                job, signature = sign_in_job(job, workspace.state_dir, spec)
            running = trainer.start(job, on_line)
            if signature is None:  # a process that loads the libraries meanwhile
                signature = SignatureJob(workspace.state_dir, environment.python, spec, job.job)
            attempt = dataclasses.replace(attempt, signature=signature)
            if options.rerun:  # the same job again, beside it, for the reproducibility check
                again = job_root_for(workspace, version + "-rerun")
                twin = prepare_job(
                    workspace, spec, exported, environment.python, again, sample=False
                )
                rerun = Rerun(
                    trainer.start(dataclasses.replace(twin, yields_cpu=True)),
                    again,
                    attempt.job_root,
                )
        trained = train_recorded(attempt, registry, running)
        made = trained.status == "ready" and not trained.cached and not trained.reused_from
        if rerun is not None and made:  # this version's own job made it: the pair is valid
            trained.rerun, rerun = rerun, None
        return trained
    finally:  # the registry decided otherwise (another pipeline won a race), or an error
        if running is not None:
            running.stop()
        if attempt.signature is not None:
            attempt.signature.cancel()  # recorded already, unless the job failed
        if rerun is not None:
            rerun.discard()


def _untrained(registry: Registry, model: str, version: str, print_: str, force: bool) -> bool:
    """Whether the registry (read in full: `must_train` was in doubt, e.g. on a registry not
    made yet) says this version's job must run: no ready record, no training one (another
    pipeline's lease decides that), no other version with its fingerprint."""
    existing = registry.get_version(version)
    status = existing.status if existing is not None else None
    if status == "training" or (status not in (None, "failed") and not force):
        return False
    if force:
        return True
    match = registry.find_by_fingerprint(model, print_)
    return match is None or match.version == version
