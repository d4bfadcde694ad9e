"""The job folder of SageMaker's script mode: a tree mirroring `/opt/ml`, and the variables
and arguments a training script receives there, as SageMaker's training toolkit sets them."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "algo-1"


@dataclass(frozen=True)
class JobDir:
    """The paths of one job folder (`root` plays `/opt/ml`)."""

    root: Path

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def output_data(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def log(self) -> Path:
        return self.root / "output" / "log.txt"

    @property
    def input_config(self) -> Path:
        return self.root / "input" / "config"

    @property
    def input_data(self) -> Path:
        return self.root / "input" / "data"

    def channel(self, name: str) -> Path:
        return self.input_data / name

    def create(self) -> None:
        """Make the empty tree."""
        for folder in (self.code, self.model, self.output_data, self.input_config, self.input_data):
            folder.mkdir(parents=True, exist_ok=True)


def encode_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, str]:
    """`hyperparameters.json` as SageMaker's SDK writes it: every value JSON-encoded."""
    return {str(k): json.dumps(v) for k, v in hyperparameters.items()}


def decode_hyperparameters(encoded: dict[str, str]) -> dict[str, Any]:
    """The toolkit's reading of `hyperparameters.json`: JSON values, else the raw string."""
    decoded: dict[str, Any] = {}
    for key, value in encoded.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def command_arguments(hyperparameters: dict[str, Any]) -> list[str]:
    """Hyperparameters as the toolkit passes them: sorted, `--name value`, `-x value` for a
    one-letter name, `str()` of each value."""
    arguments: list[str] = []
    for key in sorted(hyperparameters):
        arguments += [f"--{key}" if len(key) > 1 else f"-{key}", str(hyperparameters[key])]
    return arguments


def _env_value(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True, separators=(",", ":"))
    )


def write_config(job: JobDir, hyperparameters: dict[str, Any], channels: list[str]) -> None:
    """The files of `input/config/` that SageMaker writes before a job starts."""
    job.input_config.mkdir(parents=True, exist_ok=True)
    (job.input_config / "hyperparameters.json").write_text(
        json.dumps(encode_hyperparameters(hyperparameters), indent=2)
    )
    (job.input_config / "resourceconfig.json").write_text(
        json.dumps({"current_host": HOST, "hosts": [HOST], "network_interface_name": "eth0"})
    )
    (job.input_config / "inputdataconfig.json").write_text(
        json.dumps(
            {
                name: {
                    "TrainingInputMode": "File",
                    "S3DistributionType": "FullyReplicated",
                    "RecordWrapperType": "None",
                }
                for name in channels
            }
        )
    )


def environment(
    job: JobDir,
    hyperparameters: dict[str, Any],
    channels: list[str],
    *,
    entrypoint: str,
    seed: int,
    num_cpus: int | None = None,
    num_gpus: int = 0,
) -> dict[str, str]:
    """The SM_* variables of script mode, plus the seed as MODELCI_SEED and PYTHONHASHSEED."""
    cpus = num_cpus or os.cpu_count() or 1
    variables = {
        "SM_MODEL_DIR": str(job.model),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(hyperparameters, sort_keys=True),
        "SM_OUTPUT_DIR": str(job.output),
        "SM_OUTPUT_DATA_DIR": str(job.output_data),
        "SM_INPUT_DIR": str(job.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(job.input_config),
        "SM_INPUT_DATA_DIR": str(job.input_data),
        "SM_MODULE_DIR": str(job.code),
        "SM_USER_ENTRY_POINT": entrypoint,
        "SM_USER_ARGS": json.dumps(command_arguments(hyperparameters)),
        "SM_NUM_CPUS": str(cpus),
        "SM_NUM_GPUS": str(num_gpus),
        "SM_HOSTS": json.dumps([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_LOG_LEVEL": "20",
        "MODELCI_SEED": str(seed),
        "PYTHONHASHSEED": str(seed),
    }
    for name in channels:
        variables[f"SM_CHANNEL_{name.upper()}"] = str(job.channel(name))
    for key, value in hyperparameters.items():
        variables[f"SM_HP_{key.upper()}"] = _env_value(value)
    variables["SM_TRAINING_ENV"] = json.dumps(
        {
            "channel_input_dirs": {n: str(job.channel(n)) for n in channels},
            "current_host": HOST,
            "hosts": [HOST],
            "hyperparameters": hyperparameters,
            "model_dir": str(job.model),
            "module_dir": str(job.code),
            "num_cpus": cpus,
            "num_gpus": num_gpus,
            "output_data_dir": str(job.output_data),
            "user_entry_point": entrypoint,
        },
        sort_keys=True,
    )
    return variables


def add_channel(job: JobDir, name: str, source: Path) -> None:
    """Put a file or a folder's files under `input/data/<name>/`, as SageMaker downloads them."""
    target = job.channel(name)
    target.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target / source.name)
