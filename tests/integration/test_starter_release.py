"""The whole first day on a machine whose git default branch is `master`: `modelci init`, a
commit, `run`, a tag, `release`, and an `invoke` of the production endpoint with a CSV file."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.repos import GitRepo

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_starter_runs_and_releases_where_git_defaults_to_master(
    modelci: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["git", "config", "--global", "init.defaultBranch", "master"], check=True)
    monkeypatch.setenv("MODELCI_SERVE_PORT", str(_free_port()))
    repo = GitRepo(tmp_path / "starter")
    assert modelci("init", repo.root).code == 0
    repo.commit("starter")
    try:
        merged = modelci("-C", repo.root, "run", "--json")
        assert merged.code == 0, merged.stdout + merged.stderr
        [built] = merged.json()["models"]
        assert built["status"] == "done" and built["steps"]["deploy"] == "done"

        repo.git("tag", "-a", "v1.0.0", "-m", "first release")
        released = modelci("-C", repo.root, "release", "v1.0.0", "--json")
        assert released.code == 0, released.stdout + released.stderr
        [entry] = released.json()["models"]
        assert entry["status"] == "deployed" and entry["version"] == built["version"]

        rows = tmp_path / "rows.csv"
        rows.write_text("0.5,-1.0,0.25,2.0\n-2.0,1.5,0.0,-1.0\n")
        answer = modelci("-C", repo.root, "invoke", "example", "--data", rows)
        assert answer.code == 0, answer.stdout + answer.stderr
        assert len(json.loads(answer.stdout)["predictions"]) == 2
    finally:
        stopped = modelci("-C", repo.root, "serve", "--stop", "--json")
        assert stopped.code == 0, stopped.stdout + stopped.stderr
