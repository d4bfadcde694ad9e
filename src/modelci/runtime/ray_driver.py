"""The entry point of a training job on Ray: Ray unpacked the job folder (code, input/data,
input/config) as the working directory on some node; this sets script mode's SM_* variables
for where it landed, runs the script with `--name value` arguments, and then sends `model/`
back to modelci through the job's log, framed, base64 and checksummed (a multi-node cluster
has no disk shared with modelci, and the log is what the Job API returns to the submitter).

Runs with the standard library only, in the model's environment on the cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from modelci.runtime.jobdir import JobDir, command_arguments, decode_hyperparameters, environment
from modelci.runtime.tarball import pack_bytes

JOB_VARIABLE = "MODELCI_RAY_JOB"  # JSON: entrypoint, seed, channels, resources, limit
FRAME = "@@modelci"  # every line modelci reads back starts with it
CHUNK = 48 * 1024  # raw bytes per log line (64 KiB of base64)
DEFAULT_LIMIT = 256 * 2**20


def _emit(kind: str, data: bytes) -> None:
    """Write `data` to the log as `@@modelci <kind> begin <size> <sha256>`, base64 lines,
    `@@modelci <kind> end`."""
    out = sys.stdout
    out.write(f"{FRAME} {kind} begin {len(data)} {hashlib.sha256(data).hexdigest()}\n")
    for start in range(0, len(data), CHUNK):
        out.write(f"{FRAME} {kind} {base64.b64encode(data[start : start + CHUNK]).decode()}\n")
    out.write(f"{FRAME} {kind} end\n")
    out.flush()


def main() -> int:
    """Run the job in the working directory; the script's exit code is the job's."""
    settings = json.loads(os.environ[JOB_VARIABLE])
    job = JobDir(Path.cwd())
    for folder in (job.model, job.output_data):
        folder.mkdir(parents=True, exist_ok=True)
    config = job.input_config / "hyperparameters.json"
    hyperparameters = (
        decode_hyperparameters(json.loads(config.read_text())) if config.exists() else {}
    )
    resources = settings.get("resources", {})
    cpus = resources.get("num_cpus")
    variables = environment(
        job,
        hyperparameters,
        settings["channels"],
        entrypoint=settings["entrypoint"],
        seed=int(settings["seed"]),
        num_cpus=max(1, math.ceil(cpus)) if cpus else None,
        num_gpus=math.ceil(resources.get("num_gpus") or 0),
    )
    # Ray put modelci (and the working directory) on PYTHONPATH for this driver: the script
    # gets a clean one, as the local backend gives it
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", JOB_VARIABLE) and not k.startswith("SM_")
    }
    env |= variables | {"PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, settings["entrypoint"], *command_arguments(hyperparameters)],
        cwd=job.code,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        if job.failure.is_file():
            _emit("failure", job.failure.read_bytes()[: 64 * 1024])
        return done.returncode if done.returncode > 0 else 128 - done.returncode
    archive = pack_bytes(job.model)
    limit = int(settings.get("limit") or DEFAULT_LIMIT)
    if len(archive) > limit:
        message = (
            f"model/ packs to {len(archive)} bytes, above the {limit} bytes the Ray "
            "backend brings back through the job's log"
        )
        _emit("failure", message.encode())
        return 3
    _emit("model", archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
