"""The starter repository `modelci init` writes: one scikit-learn model in SageMaker script
mode, with a small deterministic data set, that passes `modelci validate` as it is."""

from __future__ import annotations

import random
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError
from modelci.settings import MODEL_NAME

FEATURES = 4


def _dataset(seed: int, rows: int) -> str:
    """A CSV of a linearly separable-ish binary problem, the same on every machine."""
    generator = random.Random(seed)
    weights = [1.5, -2.0, 0.75, 1.0]
    lines = ["id," + ",".join(f"f{i}" for i in range(FEATURES)) + ",label"]
    for row in range(rows):
        values = [generator.gauss(0.0, 1.0) for _ in range(FEATURES)]
        score = sum(w * v for w, v in zip(weights, values, strict=True))
        label = int(score + generator.gauss(0.0, 0.5) > 0)
        lines.append(f"{row}," + ",".join(f"{v:.6f}" for v in values) + f",{label}")
    return "\n".join(lines) + "\n"


def _template(name: str) -> str:
    return resources.files("modelci.starter").joinpath(name).read_text(encoding="utf-8")


def write_starter(directory: Path, model: str) -> dict[str, Any]:
    """Write the starter files that do not exist yet; `git init` when not in a repository."""
    if not MODEL_NAME.fullmatch(model):
        raise ConfigError(
            f"{model!r} is not a valid model name: it must match {MODEL_NAME.pattern}",
            key="--model",
        )
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "modelci.toml": _template("modelci.toml"),
        ".gitignore": ".modelci/\n__pycache__/\n",
        f"models/{model}/model.toml": _template("model.toml").replace("{model}", model),
        f"models/{model}/train.py": _template("train.py"),
        f"models/{model}/requirements.txt": "scikit-learn>=1.3\npandas>=2.0\njoblib>=1.3\n",
        f"data/{model}/train.csv": _dataset(seed=1, rows=400),
        f"data/{model}/test.csv": _dataset(seed=2, rows=100),
    }
    written: list[str] = []
    kept: list[str] = []
    for relative, text in files.items():
        path = directory / relative
        if path.exists():
            kept.append(relative)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:  # "x": never overwrite, even racing
            handle.write(text)
        written.append(relative)
    git_initialised = False
    inside = subprocess.run(
        ["git", "-C", str(directory), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        check=False,
    )
    if inside.returncode != 0:
        subprocess.run(["git", "init", "-q", str(directory)], check=True, capture_output=True)
        git_initialised = True
    return {
        "directory": str(directory),
        "written": written,
        "kept": kept,
        "git_initialised": git_initialised,
    }
