"""The input signature of a trained model, recorded into its model folder before the folder is
packed, so that it travels with the artifact (`modelci.runtime.signature`). It is read inside
the model's own environment, where the model can be loaded
(`python -m modelci.runtime.introspection`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from modelci.envs.runtime_copy import runtime_environment
from modelci.runtime.jobdir import JobDir

if TYPE_CHECKING:
    from modelci.spec import ModelSpec

TIMEOUT_S = 300.0


def signature_command(python: Path, spec: ModelSpec, job: JobDir) -> list[str]:
    """The command that records the signature of the model in `job`'s model folder."""
    command = [str(python), "-m", "modelci.runtime.introspection", "--model-dir", str(job.model)]
    handler = spec.file.serve.handler
    if handler and (job.code / handler).is_file():
        command += ["--handler", str(job.code / handler)]
    channels = sorted(spec.train.channels)
    if channels:
        name = "train" if "train" in channels else channels[0]
        if job.channel(name).exists():
            command += ["--channel", str(job.channel(name))]
    sample = spec.train.sample
    if sample is not None and sample.key:
        command += ["--drop", sample.key]
    return command


def record_signature(state_dir: Path, python: Path, spec: ModelSpec, job: JobDir) -> str | None:
    """Write the signature into the job's model folder (nothing when the model says nothing
    of its columns); None when done, else why it could not be recorded (the version is then
    served without one)."""
    try:
        done = subprocess.run(
            signature_command(python, spec, job),
            env=runtime_environment(state_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {done.returncode}"
    return None
