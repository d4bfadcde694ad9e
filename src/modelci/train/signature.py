"""The input signature of a trained model, recorded into its model folder before the folder is
packed, so that it travels with the artifact (`modelci.runtime.signature`). It is read inside
the model's own environment, where the model can be loaded
(`python -m modelci.runtime.introspection`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from modelci.envs.runtime_copy import runtime_environment
from modelci.processes import LOW_PRIORITY
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


class SignatureJob:
    """The process that records the signature, started as soon as the job's folder is laid
    out (`--when-told`): it loads the model's libraries while the job trains, so that the
    record itself, once the model is there, costs only the model's load and a few predicts."""

    def __init__(self, state_dir: Path, python: Path, spec: ModelSpec, job: JobDir):
        self.process: subprocess.Popen[str] | None = None
        self.problem: str | None = None
        try:
            self.process = subprocess.Popen(
                # it waits for the job: its libraries load with the CPU the job leaves
                [*LOW_PRIORITY, *signature_command(python, spec, job), "--when-told"],
                env=runtime_environment(state_dir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as error:
            self.problem = str(error)

    def record(self) -> str | None:
        """Write the signature into the job's model folder (nothing when the model says
        nothing of its columns); None when done, else why it could not be recorded (the
        version is then served without one)."""
        if self.process is None:
            return self.problem
        process, self.process = self.process, None
        try:
            _, stderr = process.communicate("record\n", timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return f"no signature within {TIMEOUT_S:g} s"
        if process.returncode != 0:
            lines = stderr.strip().splitlines()
            return lines[-1] if lines else f"exit code {process.returncode}"
        return None

    def cancel(self) -> None:
        """The job failed, or the record is not wanted: end the process, recording nothing."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.kill()
        process.communicate()


def record_signature(state_dir: Path, python: Path, spec: ModelSpec, job: JobDir) -> str | None:
    """Start the signature's process and record at once (the job has ended): None when done,
    else why it could not be recorded."""
    return SignatureJob(state_dir, python, spec, job).record()
