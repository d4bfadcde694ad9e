"""A training backend runs one script-mode job and says how it ended."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelci.runtime.jobdir import JobDir


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


LineSink = Callable[[str], None]


class Trainer(abc.ABC):
    """Runs training jobs somewhere: this machine, a Ray cluster, SageMaker."""

    @abc.abstractmethod
    def run(self, job: TrainingJob, on_line: LineSink | None = None) -> JobResult:
        """Run the job to its end (or its timeout), streaming log lines to `on_line`."""


def failure_reason(job: JobDir, log_tail: list[str]) -> str:
    """SageMaker's rule: `output/failure` says why; else the log's last lines."""
    if job.failure.exists():
        text = job.failure.read_text(errors="replace").strip()
        if text:
            return text
    tail = [line for line in log_tail if line.strip()][-15:]
    return "\n".join(tail) if tail else "the job failed without a message"
