"""Real git repositories for tests: write files, commit, read revisions."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitRepo:
    """A real git repository in a temporary folder, with helpers to write and commit."""

    def __init__(self, root: Path):
        self.root = root

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def sha(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev)


MODEL_TOML = """\
[model]
depends_on = {depends_on}

[train]
entrypoint = "train.py"
"""


def add_model(repo: GitRepo, folder: str, depends_on: list[str] | None = None) -> None:
    """Write a minimal valid model into `folder`."""
    deps = "[" + ", ".join(f'"{d}"' for d in depends_on or []) + "]"
    repo.write(f"{folder}/model.toml", MODEL_TOML.format(depends_on=deps))
    repo.write(f"{folder}/train.py", "print('accuracy=1.0')\n")
