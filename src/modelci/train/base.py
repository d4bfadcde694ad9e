"""A training backend runs one script-mode job and says how it ended."""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.progress import Progress
from modelci.runtime.jobdir import JobDir

if TYPE_CHECKING:  # pydantic stays off the cache-hit paths that import this module
    from modelci.sections import ModelSageMakerSection
    from modelci.train.signature import InJobSignature

# A job's name: the version `<model>-<sha12>`, then the time it was laid out.
JOB_VERSION = re.compile(r"^(?P<model>[a-z][a-z0-9-]*?)-(?P<sha12>[0-9a-f]{12})(?:-|$)")


@dataclass(frozen=True)
class TrainingJob:
    """Everything a backend needs to run one job: the laid-out job folder, the interpreter of
    the model's environment, the script and its hyperparameters."""

    name: str
    job: JobDir
    python: Path
    entrypoint: str
    hyperparameters: dict[str, Any]
    channels: list[str]
    seed: int
    timeout: float
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # name -> regex, from the spec
    resources: dict[str, float] = field(default_factory=dict)  # [train].resources, as set
    sagemaker: ModelSageMakerSection | None = None  # the model's own [sagemaker], if any
    # a check's run beside the version's own job (the reproducibility check's second run): on
    # this machine it yields the CPU to that job, which everything after it waits on
    yields_cpu: bool = False
    # the job's own process records the model's signature once the script has ended (the
    # trainers that say `signs_in_job`)
    signs: InJobSignature | None = None


@dataclass(frozen=True)
class JobResult:
    """How a job ended. `reason` says why it failed (from `output/failure` or the log);
    `metrics` are those the backend measured itself (SageMaker's final metrics), which win
    over the values parsed from the log."""

    succeeded: bool
    duration_s: float
    log_path: Path
    returncode: int | None = None
    reason: str | None = None
    timed_out: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class StartedJob(abc.ABC):
    """A job `Trainer.start` started."""

    @abc.abstractmethod
    def wait(self) -> JobResult:
        """Wait for the job to end (or its timeout); how it ended."""

    def stop(self) -> None:
        """Stop the job if it still runs (nothing to do once it has ended)."""
        return None


class EndedJob(StartedJob):
    """A job that ran to its end before `start` returned."""

    def __init__(self, result: JobResult):
        self.result = result

    def wait(self) -> JobResult:
        return self.result


class Trainer(abc.ABC):
    """Runs training jobs somewhere: this machine, a Ray cluster, SageMaker."""

    # Whether `start` returns while the job runs, so that the registry's bookkeeping overlaps
    # it: `train` then starts a job it knows must run before it opens the registry.
    starts_in_background = False
    # Whether a job's `signs` plan is followed: its own process records the model's signature
    signs_in_job = False

    @abc.abstractmethod
    def run(self, job: TrainingJob, on_line: Progress | None = None) -> JobResult:
        """Run the job to its end (or its timeout), streaming log lines to `on_line`."""

    def start(self, job: TrainingJob, on_line: Progress | None = None) -> StartedJob:
        """Start the job; by default it runs to its end here and the handle has ended."""
        return EndedJob(self.run(job, on_line))


def failure_reason(job: JobDir, log_tail: list[str]) -> str:
    """SageMaker's rule: `output/failure` says why; else the log's last lines."""
    if job.failure.exists():
        text = job.failure.read_text(errors="replace").strip()
        if text:
            return text
    tail = [line for line in log_tail if line.strip()][-15:]
    return "\n".join(tail) if tail else "the job failed without a message"
