"""Training on a Ray cluster: the job folder goes to the cluster as a Ray job through the Job
API (`JobSubmissionClient`), with a runtime environment built from the model's lock.

The job folder the runner laid out (code, input/data, input/config) is the job's working
directory; `modelci.runtime.ray_driver` (shipped with modelci's runtime, a `py_modules` entry)
sets the SM_* variables where Ray unpacked it and runs the script as the local backend does.
The model's lock becomes the runtime environment's `uv` package list (the cluster's Python plus
the pinned, hash-checked packages). `[train].resources` become the driver's `entrypoint_num_cpus`,
`entrypoint_num_gpus` and `entrypoint_memory`, checked first against the cluster's nodes.

modelci follows the job's log (shown with progress, written to `output/log.txt`) and status,
and gets `model/` back through the log: the driver writes it framed, base64 and checksummed,
since a multi-node cluster shares no disk with modelci and the log is what the Job API hands
back to whoever submitted the job. Its size is capped (`MODELCI_RAY_MODEL_LIMIT`, 256 MiB).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import logging
import os
import secrets
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from modelci.envs import lockfile
from modelci.errors import ModelciError
from modelci.progress import Progress
from modelci.raycluster import RayCluster, quiet_ray_sdk, resources_problem
from modelci.runtime.ray_driver import DEFAULT_LIMIT, FRAME, JOB_VARIABLE
from modelci.train.base import JobResult, Trainer, TrainingJob, failure_reason
from modelci.workspace import Workspace

_log = logging.getLogger(__name__)

ENTRYPOINT = "python -m modelci.runtime.ray_driver"
STOP_TIMEOUT_S = 60.0
POLL_S = 0.5
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class RayJobError(ModelciError):
    """The Job API refused or lost the job."""


def runtime_environment(job: TrainingJob, runtime: Path, lock_text: str) -> dict[str, Any]:
    """The Ray runtime environment of a job: its folder as the working directory, modelci's
    runtime as a module, the lock's pins to install."""
    settings = {
        "entrypoint": job.entrypoint,
        "seed": job.seed,
        "channels": job.channels,
        "resources": job.resources,
        "limit": int(os.environ.get("MODELCI_RAY_MODEL_LIMIT") or DEFAULT_LIMIT),
    }
    env: dict[str, Any] = {
        "working_dir": str(job.job.root),
        "excludes": ["/output/", "/model/"],
        "py_modules": [str(runtime / "modelci")],
        "env_vars": {JOB_VARIABLE: json.dumps(settings), "PYTHONUNBUFFERED": "1", **job.extra_env},
    }
    return env | lock_environment(lock_text)


def lock_environment(lock_text: str) -> dict[str, Any]:
    """The runtime environment's part that installs the lock: Ray's `uv` plugin (a virtualenv
    over the cluster's Python, the pins installed with uv, hashes checked), nothing when the
    lock pins nothing. uv rather than pip: it is what resolved the lock, and a Python made by
    uv (as the cluster's may be) has no pip."""
    requirements = lockfile.requirements(lock_text)
    if not requirements:
        return {}
    # no options: uv's cache is kept (Ray's default passes --no-cache)
    return {"uv": {"packages": requirements, "uv_pip_install_options": []}}


class LogReader:
    """Splits the job's log into what the user sees (written to `output/log.txt`, passed to
    `on_line`) and modelci's frames: the model archive, the failure file, the node."""

    def __init__(self, log: Path, on_line: Progress | None, scratch: Path):
        self.handle = log.open("w", encoding="utf-8")
        self.on_line = on_line
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self.partial = ""
        self.scratch = scratch
        self.frames: dict[str, Path] = {}  # kind -> verified content
        self._open: tuple[str, int, str, Any, Any] | None = None  # kind, size, sha, file, hash

    def feed(self, text: str) -> None:
        """Take a chunk of the log (chunks may end mid-line)."""
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self.partial:
            self._line(self.partial)
            self.partial = ""
        self.handle.close()

    def _line(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.startswith(FRAME + " "):
            self.handle.write(line + "\n")
            self.tail.append(line)
            if self.on_line is not None:
                self.on_line(line)
            return
        parts = line.split(" ")
        kind, word = [*parts, "", ""][1:3]
        if word == "begin" and len(parts) == 5:
            path = self.scratch / kind
            self._open = (kind, int(parts[3]), parts[4], path.open("wb"), hashlib.sha256())
        elif self._open is not None and self._open[0] == kind:
            name, size, sha, handle, digest = self._open
            if word == "end":
                handle.close()
                self._open = None
                if path_ok(self.scratch / name, size, sha, digest.hexdigest()):
                    self.frames[name] = self.scratch / name
            else:
                data = base64.b64decode(word)
                handle.write(data)
                digest.update(data)


def path_ok(path: Path, size: int, sha: str, seen: str) -> bool:
    """Whether a received frame is whole: its size and sha256 as announced."""
    return path.stat().st_size == size and seen == sha


class RayTrainer(Trainer):
    """Runs a job as a Ray job on the cluster `[ray]` names."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.cluster = RayCluster.from_settings(workspace.project.ray)
        self.cluster.check()  # an unreachable cluster stops here, before anything is recorded

    def run(self, job: TrainingJob, on_line: Progress | None = None) -> JobResult:
        started = time.monotonic()
        job.job.log.parent.mkdir(parents=True, exist_ok=True)
        problem = resources_problem(job.resources, self.cluster.nodes())
        if problem is not None:
            reason = f"{self.cluster.describe()}: {problem} ([train].resources)"
            job.job.log.write_text(reason + "\n")
            return JobResult(
                False,
                time.monotonic() - started,
                job.job.log,
                None,
                reason,
                details={"ray_address": self.cluster.address},
            )
        from modelci.envs.runtime_copy import runtime_dir

        lock = job.python.parent.parent / "modelci-lock.txt"
        runtime_env = runtime_environment(
            job, runtime_dir(self.workspace.state_dir), lock.read_text() if lock.is_file() else ""
        )
        client = self._client()
        submission_id = f"modelci-{job.name}-{secrets.token_hex(3)}"
        try:
            client.submit_job(
                entrypoint=ENTRYPOINT,
                submission_id=submission_id,
                runtime_env=runtime_env,
                metadata={"modelci_job": job.name},
                entrypoint_num_cpus=job.resources.get("num_cpus"),
                entrypoint_num_gpus=job.resources.get("num_gpus"),
                entrypoint_memory=int(job.resources["memory"])
                if job.resources.get("memory")
                else None,
            )
        except Exception as error:  # the SDK raises RuntimeError with the server's answer
            raise RayJobError(f"{self.cluster.describe()} refused the job: {error}") from None
        details: dict[str, Any] = {"ray_job_id": submission_id, "ray_address": self.cluster.address}
        with tempfile.TemporaryDirectory(dir=job.job.output) as scratch:
            reader = LogReader(job.job.log, on_line, Path(scratch))
            try:
                timed_out = self._follow(client, submission_id, reader, started + job.timeout)
                status, message, node = self._finish(client, submission_id, timed_out)
            except BaseException:  # Ctrl-C or a lost connection: never leave the job running
                _stop_job(client, submission_id)
                reader.close()
                raise
            if status == "SUCCEEDED" and "model" not in reader.frames:
                reader.close()  # the live tail missed some of it: read the whole log
                reader = LogReader(job.job.log, None, Path(scratch))
                reader.feed(client.get_job_logs(submission_id))
            reader.close()
            details["ray_node_id"] = node
            duration = time.monotonic() - started
            if timed_out:
                return JobResult(
                    False,
                    duration,
                    job.job.log,
                    None,
                    f"timed out after {job.timeout:g} s ([train].timeout); Ray "
                    f"job {submission_id} stopped",
                    True,
                    details=details,
                )
            if status != "SUCCEEDED" or "model" not in reader.frames:
                return JobResult(
                    False,
                    duration,
                    job.job.log,
                    None,
                    self._reason(job, reader, status, message, submission_id),
                    details=details,
                )
            from modelci.train.artifacts import unpack

            unpack(reader.frames["model"], job.job.model)
        return JobResult(True, duration, job.job.log, 0, details=details)

    def _client(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        quiet_ray_sdk()

        try:
            return JobSubmissionClient(self.cluster.dashboard_url)
        except Exception as error:
            from modelci.raycluster import RayUnreachable

            raise RayUnreachable(
                f"{self.cluster.describe()} does not answer: {error}",
                file="modelci.toml",
                key="ray.address",
            ) from None

    @staticmethod
    def _follow(client: Any, submission_id: str, reader: LogReader, deadline: float) -> bool:
        """Stream the log until the job ends; True when the deadline came first."""

        async def tail() -> None:
            async for chunk in client.tail_job_logs(submission_id):
                reader.feed(chunk)

        async def follow() -> bool:
            try:
                await asyncio.wait_for(tail(), timeout=max(deadline - time.monotonic(), 0.1))
            except TimeoutError:
                return True
            except RuntimeError:  # the log's connection dropped: the status decides
                pass
            return False

        with warnings.catch_warnings():
            # Ray's SDK opens the log's websocket with aiohttp's deprecated `ssl=None`
            warnings.filterwarnings("ignore", "ssl=None is deprecated", DeprecationWarning)
            return asyncio.run(follow())

    @staticmethod
    def _finish(client: Any, submission_id: str, stop: bool) -> tuple[str, str, str | None]:
        """Wait for the job's final status (stopping it first when asked): the status, Ray's
        message and the node its driver ran on."""
        if stop:
            _stop_job(client, submission_id)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while True:
            info = client.get_job_info(submission_id)
            status = str(getattr(info.status, "value", info.status))
            if status in TERMINAL:
                return status, info.message or "", info.driver_node_id
            if time.monotonic() > deadline:
                raise RayJobError(f"Ray job {submission_id} is still {status} after its log ended")
            time.sleep(POLL_S)

    @staticmethod
    def _reason(
        job: TrainingJob, reader: LogReader, status: str, message: str, submission_id: str
    ) -> str:
        if "failure" in reader.frames:
            text = reader.frames["failure"].read_text(errors="replace").strip()
            if text:
                return text
        if status == "SUCCEEDED":
            return f"Ray job {submission_id} succeeded but sent no model back"
        if status == "STOPPED":
            return f"Ray job {submission_id} was stopped"
        reason = failure_reason(job.job, list(reader.tail))
        if not reader.tail and message:
            reason = message.strip()  # e.g. the runtime environment could not be set up
        return reason


def _stop_job(client: Any, submission_id: str) -> None:
    """Ask Ray to stop a job, best effort: a job that already ended refuses, and the error that
    led here matters more; the refusal is logged."""
    try:
        client.stop_job(submission_id)
    except Exception:
        _log.debug("stopping Ray job %s failed", submission_id, exc_info=True)
