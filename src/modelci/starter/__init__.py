"""The starter repository `modelci init` writes: one scikit-learn model in SageMaker script
mode, with a small deterministic data set, that passes `modelci validate` as it is."""

from __future__ import annotations

import json
import random
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError, GitError
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
    """Write the starter files that do not exist yet. Outside a repository, `git init` one
    whose branch is `main`, whatever git's default; inside one, the starter's `[project].main`
    names the branch it already has."""
    if not MODEL_NAME.fullmatch(model):
        raise ConfigError(
            f"{model!r} is not a valid model name: it must match {MODEL_NAME.pattern}",
            key="--model",
        )
    directory.mkdir(parents=True, exist_ok=True)
    git_initialised = not _inside_work_tree(directory)
    if git_initialised:
        _git_init(directory)
    main = _main_branch(directory)
    files = {
        "modelci.toml": _template("modelci.toml").replace(
            "{main}",
            json.dumps(main, ensure_ascii=False),  # a TOML basic string
        ),
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
    return {
        "directory": str(directory),
        "written": written,
        "kept": kept,
        "git_initialised": git_initialised,
        "main": main,
    }


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=False
    )


def _inside_work_tree(directory: Path) -> bool:
    return _git(directory, "rev-parse", "--is-inside-work-tree").returncode == 0


def _git_init(directory: Path) -> None:
    """`git init` with the branch `main`, not `init.defaultBranch` (often `master`): the
    starter's settings name `main`, and `release` needs the branch they name."""
    done = _git(directory, "init", "-q")
    if done.returncode == 0:
        # rather than `init -b main`: also works before git 2.28; HEAD has no commit yet
        done = _git(directory, "symbolic-ref", "HEAD", "refs/heads/main")
    if done.returncode != 0:
        raise GitError(f"git init {directory} failed: {done.stderr.strip()}")


def _main_branch(directory: Path) -> str:
    """The branch releases come from in an existing repository: origin's default branch when
    the clone knows it, `main` when there is one, else the branch checked out (even before its
    first commit); `main` on a detached HEAD."""
    origin = _git(directory, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if origin.returncode == 0 and origin.stdout.strip().startswith("origin/"):
        return origin.stdout.strip().removeprefix("origin/")
    for ref in ("refs/heads/main", "refs/remotes/origin/main"):
        if _git(directory, "show-ref", "--verify", "--quiet", ref).returncode == 0:
            return "main"
    current = _git(directory, "symbolic-ref", "--quiet", "--short", "HEAD")
    return current.stdout.strip() if current.returncode == 0 and current.stdout.strip() else "main"
