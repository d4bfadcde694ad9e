"""Training on this machine: the script runs as a child process in the model's environment."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from modelci.train.base import JobResult, LineSink, Trainer, TrainingJob, failure_reason
from modelci.train.jobdir import command_arguments, environment

# A job's own process group is stopped with SIGTERM, then SIGKILL after this grace.
KILL_GRACE_S = 5.0
# A job must not outlive a modelci that was killed (SIGKILL leaves no time to stop it):
# util-linux's setpriv asks the kernel to kill it when its parent dies.
_DIE_WITH_PARENT = (["setpriv", "--pdeathsig", "KILL", "--"]
                    if sys.platform == "linux" and shutil.which("setpriv") else [])


def child_environment(job: TrainingJob) -> dict[str, str]:
    """The parent's variables, less what would leak modelci or another venv into the job,
    plus script mode's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")
           and not k.startswith("SM_")}
    venv = job.python.parent.parent
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{job.python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(environment(job.job, job.hyperparameters, job.channels,
                           entrypoint=job.entrypoint, seed=job.seed))
    env.update(job.extra_env)
    return env


class LocalTrainer(Trainer):
    """Runs a job as a local process group, killed when it outlives its timeout."""

    def run(self, job: TrainingJob, on_line: LineSink | None = None) -> JobResult:
        command = [*_DIE_WITH_PARENT, str(job.python), job.entrypoint,
                   *command_arguments(job.hyperparameters)]
        tail: collections.deque[str] = collections.deque(maxlen=50)
        started = time.monotonic()
        job.job.log.parent.mkdir(parents=True, exist_ok=True)
        with job.job.log.open("w", encoding="utf-8") as log:
            process = subprocess.Popen(
                command, cwd=job.job.code, env=child_environment(job),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, text=True, errors="replace", bufsize=1,
            )
            assert process.stdout is not None

            def pump() -> None:
                assert process.stdout is not None
                for line in process.stdout:
                    log.write(line)
                    tail.append(line.rstrip("\n"))
                    if on_line is not None:
                        on_line(line.rstrip("\n"))

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            timed_out = False
            try:
                returncode = process.wait(timeout=job.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                returncode = self._stop(process)
            except BaseException:  # Ctrl-C: never leave the job running
                self._stop(process)
                raise
            reader.join(timeout=KILL_GRACE_S)
            process.stdout.close()
        duration = time.monotonic() - started
        if timed_out:
            return JobResult(False, duration, job.job.log, returncode,
                             f"timed out after {job.timeout:g} s ([train].timeout)", True)
        if returncode != 0:
            reason = failure_reason(job.job, list(tail))
            return JobResult(False, duration, job.job.log, returncode, reason)
        return JobResult(True, duration, job.job.log, returncode)

    @staticmethod
    def _stop(process: subprocess.Popen[str]) -> int:
        """Stop the job's whole process group: SIGTERM, then SIGKILL after the grace."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                return process.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                continue
        return process.wait()
