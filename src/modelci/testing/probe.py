"""Run request bodies through model versions' real serving handlers, each in its own
environment: the host half of the probe, which starts `python -m modelci.runtime.probe` in the
environment's Python with only modelci's runtime on PYTHONPATH."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from modelci.envs.runtime_copy import runtime_environment
from modelci.errors import ModelciError


def probe(
    python: str,
    state_dir: str,
    models: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    timeout: float = 600,
) -> list[list[dict[str, Any]]]:
    """Run `requests` through each model in its environment's `python`
    (a subprocess with only modelci's runtime on PYTHONPATH); the answers, per model."""
    env = runtime_environment(Path(state_dir))
    job = json.dumps({"models": models, "requests": requests})
    done = subprocess.run(
        [python, "-m", "modelci.runtime.probe"],
        input=job,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ModelciError(f"the model's handler could not be loaded or run:\n{tail}")
    answers: list[list[dict[str, Any]]] = json.loads(done.stdout)["answers"]
    return answers
