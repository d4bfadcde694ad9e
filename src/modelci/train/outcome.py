"""What `train` was asked and what it did for one model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelci.registry.base import VersionRecord
from modelci.train.base import StartedJob


@dataclass(frozen=True)
class TrainOptions:
    rev: str = "HEAD"
    dirty: bool = False
    force: bool = False
    sample: bool = False
    break_lease: bool = False
    # start the same job a second time beside the version's own (`run` does): the
    # reproducibility check then compares the two instead of training twice more
    rerun: bool = False


@dataclass(frozen=True)
class Rerun:
    """A second run of a version's own job, started beside it (`TrainOptions.rerun`)."""

    job: StartedJob
    job_root: Path  # the second run's folder
    trained_root: Path  # the version's own job's folder

    def discard(self) -> None:
        """Stop the second run if it still runs, and release what it holds."""
        self.job.stop()
        self.job.wait()


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
    # the second run for the reproducibility check, when one was started (never printed)
    rerun: Rerun | None = field(default=None, repr=False, compare=False)

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


def version_name(model: str, commit: str, *, dirty: bool = False) -> str:
    """`<model>-<sha12>`; a dirty work tree's version says so."""
    return f"{model}-{commit[:12]}" + ("-dirty" if dirty else "")


def outcome(
    record: VersionRecord,
    *,
    cached: bool = False,
    reused_from: str | None = None,
    job_dir: str | None = None,
) -> TrainOutcome:
    """The outcome a recorded version tells."""
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
