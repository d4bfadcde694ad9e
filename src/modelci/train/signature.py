"""The input signature of a trained model, recorded into its model folder before the folder is
packed, so that it travels with the artifact (`modelci.runtime.signature`). It is read inside
the model's own environment, where the model can be loaded
(`python -m modelci.runtime.introspection`): on this machine by the training job's own process
once its script has ended (`modelci.runtime.scriptmode`), else by a process of its own."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from modelci.envs.runtime_copy import runtime_dir, runtime_environment
from modelci.processes import LOW_PRIORITY
from modelci.runtime.jobdir import JobDir
from modelci.runtime.scriptmode import REPORT_FAILED, REPORT_RECORDED

if TYPE_CHECKING:
    from modelci.spec import ModelSpec
    from modelci.train.base import TrainingJob

TIMEOUT_S = 300.0


def introspection_arguments(spec: ModelSpec, job: JobDir) -> list[str]:
    """The arguments of `modelci.runtime.introspection` that record the signature of the model
    in `job`'s model folder (absolute paths: the script may change its folder)."""
    job = JobDir(job.root.absolute())
    arguments = ["--model-dir", str(job.model)]
    handler = spec.file.serve.handler
    if handler and (job.code / handler).is_file():
        arguments += ["--handler", str(job.code / handler)]
    channels = sorted(spec.train.channels)
    if channels:
        name = "train" if "train" in channels else channels[0]
        if job.channel(name).exists():
            arguments += ["--channel", str(job.channel(name))]
    sample = spec.train.sample
    if sample is not None and sample.key:
        arguments += ["--drop", sample.key]
    return arguments


def signature_command(python: Path, spec: ModelSpec, job: JobDir) -> list[str]:
    """The command that records the signature of the model in `job`'s model folder."""
    return [str(python), "-m", "modelci.runtime.introspection", *introspection_arguments(spec, job)]


class SignatureRecorder(Protocol):
    """What records a version's signature once its job has succeeded."""

    def record(self) -> str | None:
        """Write the signature into the job's model folder; None when done (or the model says
        nothing of its columns), else why it could not be recorded."""

    def cancel(self) -> None:
        """The job failed, or the record is not wanted: record nothing."""


@dataclass(frozen=True)
class InJobSignature:
    """The signature recorded by the training job's own process once its script has ended
    with 0 (`modelci.runtime.scriptmode`), reporting how it went into `report`."""

    wrapper: Path  # the runtime's copy of scriptmode.py
    introspection: list[str]
    report: Path

    def command(self, python: Path, entrypoint: str, arguments: list[str]) -> list[str]:
        """The job's command: the script, then the record, in one process."""
        plan = json.dumps({"introspection": self.introspection, "report": str(self.report)})
        return [str(python), str(self.wrapper), plan, entrypoint, *arguments]

    def state(self) -> str | None:
        """The report's state: None before the script has ended with 0, then `started`, then
        `recorded` or `failed`."""
        return self.outcome()[0]

    def outcome(self) -> tuple[str | None, str]:
        """The report's state, and why a `failed` record failed (read once)."""
        try:
            report = json.loads(self.report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
        if not isinstance(report, dict) or report.get("state") is None:
            return None, ""
        return str(report["state"]), str(report.get("error") or "the record failed")


def in_job_signature(state_dir: Path, spec: ModelSpec, job: JobDir) -> InJobSignature:
    """The plan for the job at `job` to record its own signature."""
    return InJobSignature(
        runtime_dir(state_dir).absolute() / "modelci" / "runtime" / "scriptmode.py",
        introspection_arguments(spec, job),
        job.root.absolute() / "modelci-signature-report.json",
    )


def sign_in_job(
    job: TrainingJob, state_dir: Path, spec: ModelSpec
) -> tuple[TrainingJob, SignedInJob]:
    """The job, told to record its signature in its own process, and what then checks the
    record (for the trainers that say `signs_in_job`)."""
    plan = in_job_signature(state_dir, spec, job.job)
    return (
        dataclasses.replace(job, signs=plan),
        SignedInJob(plan, state_dir, job.python, spec, job.job),
    )


class SignedInJob:
    """The signature the job's own process recorded; recorded afresh, in a process of its own,
    when the job left no report (its script ended the process itself) or one that still says
    `started` (the record crashed the process)."""

    def __init__(
        self, plan: InJobSignature, state_dir: Path, python: Path, spec: ModelSpec, job: JobDir
    ):
        self.plan = plan
        self.fallback = (state_dir, python, spec, job)

    def record(self) -> str | None:
        state, error = self.plan.outcome()
        if state == REPORT_RECORDED:
            return None
        if state == REPORT_FAILED:  # an error a process of its own would meet again
            return error
        return record_signature(*self.fallback)

    def cancel(self) -> None:
        return None


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
