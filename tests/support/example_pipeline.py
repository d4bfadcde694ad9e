"""The bundled example repository taken through the demo's flow once: merge pipeline, a tagged
release to production, a change to the churn classifier and a second merge pipeline. What the
dashboard and report tests read; every command runs as a real `python -m modelci` process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REGISTRY = "sqlite:///.modelci/registry.db"


def clean_environ(home: Path, port: int) -> dict[str, str]:
    """This process's environment for a modelci child: no MODELCI_, GIT_ or CI variables from
    outside, a HOME of its own, a fixed git identity, and the endpoint host's port."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MODELCI_", "GIT_", "CIRCLE_", "GITHUB_"))
    }
    uv_cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    environ.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "NO_COLOR": "1",
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Author",
            "GIT_COMMITTER_EMAIL": "author@example.com",
            "UV_CACHE_DIR": uv_cache,
            "MODELCI_SERVE_PORT": str(port),
            "MODELCI_ALLOW_LOCAL": "1",  # local settings, also when the suite runs under CI
        }
    )
    return environ


@dataclass(frozen=True)
class ExampleRepository:
    """The example repository after the flow, and the environment its commands ran with."""

    root: Path
    environ: dict[str, str]
    first: str  # the commit of the first merge (released as v1.0.0)
    second: str  # the commit changing churn's C (built, deployed to staging only)

    def modelci(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "modelci", "-C", str(self.root), *args],
            env=self.environ,
            capture_output=True,
            text=True,
            check=False,
        )
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.root), *args],
            env=self.environ,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def json(self, *args: str) -> Any:
        return json.loads(self.modelci(*args, "--json").stdout)


def run_example_pipeline(base: Path) -> ExampleRepository:
    """Copy examples/ into `base`, commit, and run the flow; the endpoint host is stopped."""
    (base / "home").mkdir(parents=True)
    root = base / "examples"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("__pycache__", ".modelci"))
    environ = clean_environ(base / "home", free_port())
    (base / "home" / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    repo = ExampleRepository(root, environ, "", "")
    repo.git("init", "-q", "-b", "main")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "example models")
    try:
        repo.modelci("run", "--json")
        first = repo.git("rev-parse", "HEAD")
        repo.git("tag", "-a", "v1.0.0", "-m", "first release")
        repo.modelci("release", "v1.0.0", "--json")
        spec = root / "models" / "churn" / "model.toml"
        spec.write_text(spec.read_text().replace("C = 1.0", "C = 0.5"))
        repo.git("commit", "-q", "-am", "churn: stronger regularisation")
        repo.modelci("run", "--json")
        second = repo.git("rev-parse", "HEAD")
    finally:
        repo.modelci("serve", "--stop")
    return ExampleRepository(root, environ, first, second)
