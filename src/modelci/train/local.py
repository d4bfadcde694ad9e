"""Training on this machine: the script runs as a child process in the model's environment."""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
from typing import IO, TYPE_CHECKING

from modelci.processes import DIE_WITH_PARENT as _DIE_WITH_PARENT
from modelci.processes import LOW_PRIORITY, stop_group, yield_cpu
from modelci.progress import Progress
from modelci.runtime.jobdir import command_arguments, environment
from modelci.runtime.scriptmode import REPORT_STARTED
from modelci.train.base import JobResult, StartedJob, Trainer, TrainingJob, failure_reason

if TYPE_CHECKING:
    from modelci.workspace import Workspace

# A job's own process group is stopped with SIGTERM, then SIGKILL after this grace.
KILL_GRACE_S = 5.0


def child_environment(job: TrainingJob) -> dict[str, str]:
    """The parent's variables, less what would leak modelci or another venv into the job,
    plus script mode's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
        and not k.startswith("SM_")
    }
    venv = job.python.parent.parent
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{job.python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(
        environment(
            job.job, job.hyperparameters, job.channels, entrypoint=job.entrypoint, seed=job.seed
        )
    )
    env.update(job.extra_env)
    return env


class RunningJob(StartedJob):
    """A job started in the background; `wait` ends it (or its timeout does)."""

    def __init__(
        self,
        job: TrainingJob,
        on_line: Progress | None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        """Start `command` (default: the script in the model's environment) with `env`
        (default: the parent's plus script mode's)."""
        self.job = job
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self.started = time.monotonic()
        job.job.log.parent.mkdir(parents=True, exist_ok=True)
        self.log: IO[str] = job.job.log.open("w", encoding="utf-8")
        arguments = command_arguments(job.hyperparameters)
        command = command or [
            *_DIE_WITH_PARENT,
            *(LOW_PRIORITY if job.yields_cpu else []),
            *(
                job.signs.command(job.python, job.entrypoint, arguments)
                if job.signs is not None
                else [str(job.python), job.entrypoint, *arguments]
            ),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=job.job.code,
            env=env if env is not None else child_environment(job),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            errors="replace",
            bufsize=1,
        )
        if job.yields_cpu:
            yield_cpu(self.process.pid)
        self.reader = threading.Thread(target=self._pump, args=(on_line,), daemon=True)
        self.reader.start()

    def _pump(self, on_line: Progress | None) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            self.tail.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(line.rstrip("\n"))

    def wait(self) -> JobResult:
        """Wait for the job, stopping it at its timeout; how it ended."""
        timed_out = False
        remaining = max(self.job.timeout - (time.monotonic() - self.started), 0.001)
        try:
            returncode = self.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
            returncode = self.kill()
        except BaseException:  # Ctrl-C: never leave the job running
            self.kill()
            raise
        finally:
            self.reader.join(timeout=KILL_GRACE_S)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.log.close()
        duration = time.monotonic() - self.started
        log_path = self.job.job.log
        if timed_out:
            return JobResult(
                False,
                duration,
                log_path,
                returncode,
                f"timed out after {self.job.timeout:g} s ([train].timeout)",
                True,
            )
        if returncode != 0 and self._script_succeeded():
            # the script ended with 0; what ended the process was the signature's record
            # (a crash in a library asked about NaN): the record is made afresh, apart
            return JobResult(True, duration, log_path, returncode)
        if returncode != 0:
            return JobResult(
                False, duration, log_path, returncode, failure_reason(self.job.job, list(self.tail))
            )
        return JobResult(True, duration, log_path, returncode)

    def _script_succeeded(self) -> bool:
        """Whether the job's script ended with 0 and its process then ended in the record of
        the signature (only a job that `signs` can tell). A process that ends badly after the
        record (at its exit) fails, as `python train.py` would."""
        return self.job.signs is not None and self.job.signs.state() == REPORT_STARTED

    def stop(self) -> None:
        """Stop the job if it still runs."""
        if self.process.poll() is None:
            self.kill()

    def kill(self) -> int:
        """Stop the job's whole process group: SIGTERM, then SIGKILL after the grace."""
        return stop_group(self.process, KILL_GRACE_S)


class LocalTrainer(Trainer):
    """Runs a job as a local process group, killed when it outlives its timeout."""

    starts_in_background = True
    signs_in_job = True

    def __init__(self, workspace: Workspace | None = None):
        self.workspace = workspace  # unused: this machine needs no settings

    def start(self, job: TrainingJob, on_line: Progress | None = None) -> RunningJob:
        """Start the job and return at once (the caller's bookkeeping overlaps the job)."""
        return RunningJob(job, on_line)

    def run(self, job: TrainingJob, on_line: Progress | None = None) -> JobResult:
        return self.start(job, on_line).wait()
