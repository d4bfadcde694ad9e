"""The `train` program of a modelci image: SageMaker starts it with `/opt/ml` laid out, and it
runs the model's entry point in script mode, as SageMaker's framework containers do.

Runs with the standard library only (it lives inside the model's image).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from modelci.runtime.jobdir import JobDir, command_arguments, decode_hyperparameters, environment


def main() -> int:
    """Read the job's configuration from `$SM_ROOT` (default `/opt/ml`) and exec the script."""
    job = JobDir(Path(os.environ.get("SM_ROOT", "/opt/ml")))
    config = job.input_config / "hyperparameters.json"
    encoded = json.loads(config.read_text()) if config.exists() else {}
    hyperparameters = decode_hyperparameters(encoded)
    # SageMaker's SDK passes the script's name among the hyperparameters
    entrypoint = str(hyperparameters.pop("sagemaker_program", "")) or os.environ.get(
        "SAGEMAKER_PROGRAM", "train.py"
    )
    for key in [k for k in hyperparameters if k.startswith("sagemaker_")]:
        hyperparameters.pop(key)
    channels = sorted(p.name for p in job.input_data.iterdir()) if job.input_data.exists() else []
    seed = int(os.environ.get("MODELCI_SEED", "0"))
    os.environ.update(environment(job, hyperparameters, channels, entrypoint=entrypoint, seed=seed))
    os.chdir(job.code)
    arguments = [sys.executable, entrypoint, *command_arguments(hyperparameters)]
    os.execv(sys.executable, arguments)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
