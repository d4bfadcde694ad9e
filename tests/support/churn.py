"""The example churn classifier trained for the serving tests, its test rows, and user handler
files written into a model folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def train_churn_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example churn classifier trained by its own train.py, once per test session."""
    root = tmp_path_factory.getbasetemp() / "serve-churn"
    model_dir = root / "model"
    if (model_dir / "model.joblib").is_file():
        return model_dir
    for channel in ("train", "test"):
        (root / channel).mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "data" / "churn" / f"{channel}.csv", root / channel)
    env = os.environ | {
        "SM_MODEL_DIR": str(model_dir),
        "SM_CHANNEL_TRAIN": str(root / "train"),
        "SM_CHANNEL_TEST": str(root / "test"),
    }
    script = EXAMPLES / "models" / "churn" / "train.py"
    subprocess.run([sys.executable, str(script)], env=env, check=True, capture_output=True)
    return model_dir


def churn_rows() -> np.ndarray:
    """The test set's feature rows (f0..f19), as the model was fitted on them."""
    lines = (EXAMPLES / "data" / "churn" / "test.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[0] == "customer_id" and header[-1] == "label" and len(header) == 22
    return np.array([line.split(",")[1:-1] for line in lines[1:]], dtype=np.float64)


def write_handler(folder: Path, source: str, name: str = "inference.py") -> Path:
    """A user's handler file in `folder`: `source`, dedented."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path
