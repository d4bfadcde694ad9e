"""Preparing a training job: the spec at a commit, its inputs checked, a clean export of the
model folder and channels laid out as SageMaker's /opt/ml, and running it on a backend."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modelci import git
from modelci.errors import ConfigError
from modelci.loader import require
from modelci.progress import Progress
from modelci.runtime.jobdir import JobDir, add_channel, write_config
from modelci.settings import MODEL_FILE
from modelci.train import open_trainer
from modelci.train.artifacts import extract
from modelci.train.base import JobResult, Trainer, TrainingJob
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.spec import ModelSpec


def spec_at(workspace: Workspace, name: str, commit: str, dirty: bool) -> ModelSpec:
    """The model's spec as the commit (or, with --dirty, the work tree) has it."""
    from modelci.spec import read_model
    from modelci.speccache import SpecCache

    # another model's broken model.toml (or this one's, at a commit where it was valid) must
    # not stop the endpoint host from serving a version
    readable, _ = workspace.readable_models
    current = next((m for m in readable if m.name == name), None)
    if dirty:
        return current or workspace.model(name)  # raises the spec's own error
    folder = current.folder if current else _folder_at(workspace, name, commit)
    spec_file = f"{folder}/{MODEL_FILE}"
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
        return read_model(folder, blob, text, spec_file, cache)
    finally:
        cache.save()


def _folder_at(workspace: Workspace, name: str, commit: str) -> str:
    """The folder of the model of that name at `commit`, for one the work tree cannot say
    (its model.toml is broken now)."""
    import os

    from modelci.changes import SpecCache, snapshot
    from modelci.spec import find_model

    entry = (
        snapshot(workspace.root, commit, SpecCache(workspace.root), os.environ).by_name().get(name)
    )
    if entry is None:
        find_model(workspace.models, name)  # raises: the bad spec's error, or the known names
        raise ConfigError(f"no model named {name!r} at commit {commit[:12]}")
    return entry.folder


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
                raise ConfigError(
                    f"channel URI {source!r}: a channel is a repository path or a file:// URI",
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
        parquet = path.endswith(".parquet") or any(
            f.startswith(path + "/") and f.endswith(".parquet") for f in files
        )
        if parquet and spec.train.sample is not None:
            # sampling a Parquet channel needs pyarrow: say so before any job or record
            require(
                "pyarrow",
                what=f"sampling the Parquet channel {name!r}",
                key=f"train.channels.{name}",
                file=spec.spec_file,
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
        extract(archive, destination)


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
        sagemaker=spec.file.sagemaker,
    )


def run_job(
    workspace: Workspace,
    spec: ModelSpec,
    commit: str | None,
    python: Path,
    job_root: Path,
    *,
    sample: bool,
    on_line: Progress | None,
    trainer: Trainer | None = None,
) -> JobResult:
    """Lay out and run one job (on `trainer`, else the one the settings name)."""
    training = prepare_job(workspace, spec, commit, python, job_root, sample=sample)
    result: JobResult = (trainer or open_trainer(workspace)).run(training, on_line)
    return result


def job_root_for(workspace: Workspace, version: str) -> Path:
    """A new job folder under `.modelci/jobs/`, named after the version and the time."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    root = workspace.state_dir / "jobs" / f"{version}-{stamp}"
    suffix = 1
    while root.exists():
        suffix += 1
        root = root.with_name(f"{version}-{stamp}-{suffix}")
    root.parent.mkdir(parents=True, exist_ok=True)
    return root
