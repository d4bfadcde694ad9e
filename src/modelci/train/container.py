"""Training in the model's image: the job runs `train` in a container of
`<registry>/<model>:<sha12>`, with the job folder's `input/`, `model/` and `output/` mounted
at `/opt/ml/...` as SageMaker mounts them (the code is the image's, `/opt/ml/code`), no
network, and the seed and timeout of local jobs."""

from __future__ import annotations

import subprocess
import uuid
from typing import TYPE_CHECKING

from modelci.errors import ConfigError
from modelci.progress import Progress
from modelci.train.base import JOB_VERSION, JobResult, Trainer, TrainingJob
from modelci.train.local import KILL_GRACE_S, RunningJob

if TYPE_CHECKING:
    from modelci.envs.engine import Engine
    from modelci.workspace import Workspace

OPT_ML = "/opt/ml"


class ContainerJob(RunningJob):
    """A job running in a container; stopping it removes the container too (the engine's
    client may die without its container)."""

    def __init__(
        self, engine: Engine, image: str, job: TrainingJob, on_line: Progress | None
    ) -> None:
        self.engine = engine
        self.image = image
        self.container = f"modelci-train-{uuid.uuid4().hex[:12]}"
        mounts: list[str] = []
        for folder in ("input", "model", "output"):
            (job.job.root / folder).mkdir(parents=True, exist_ok=True)
            mounts += ["-v", f"{job.job.root / folder}:{OPT_ML}/{folder}:z"]
        variables = {"MODELCI_SEED": str(job.seed), "PYTHONHASHSEED": str(job.seed)}
        variables |= {"SAGEMAKER_PROGRAM": job.entrypoint, **job.extra_env}
        command = engine.command(
            "run",
            "--rm",
            "--name",
            self.container,
            "--network=none",
            *mounts,
            *[argument for k, v in variables.items() for argument in ("-e", f"{k}={v}")],
            image,
            "train",
        )
        super().__init__(job, on_line, command=command, env=engine.environ())

    def kill(self) -> int:
        subprocess.run(
            self.engine.command("rm", "-f", "-t", str(int(KILL_GRACE_S)), self.container),
            capture_output=True,
            env=self.engine.environ(),
            check=False,
        )
        return super().kill()

    def wait(self) -> JobResult:
        result = super().wait()
        return JobResult(
            result.succeeded,
            result.duration_s,
            result.log_path,
            result.returncode,
            result.reason,
            result.timed_out,
            {**result.details, "image": self.image},
            result.metrics,
        )


class ContainerTrainer(Trainer):
    """Runs each job in a container of its version's image (built or pulled when missing)."""

    starts_in_background = True

    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    def start(self, job: TrainingJob, on_line: Progress | None = None) -> ContainerJob:
        """Start the job in its container and return at once."""
        from modelci.envs.modelimage import model_image

        # the job's name, or its folder's for the runs of a reproducibility test
        # (`tests/<version>-<time>/run-<n>`)
        match = JOB_VERSION.match(job.name) or JOB_VERSION.match(job.job.root.parent.name)
        if match is None:
            raise ConfigError(f"job {job.name!r} names no version: cannot tell its image")
        engine, image = model_image(self.workspace, match["model"], match["sha12"], on_line)
        return ContainerJob(engine, image, job, on_line)

    def run(self, job: TrainingJob, on_line: Progress | None = None) -> JobResult:
        return self.start(job, on_line).wait()
