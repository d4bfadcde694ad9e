"""Training leases with real processes: a second pipeline does not train a version another
one is training; a pipeline killed with SIGKILL mid-train blocks nobody, and its job dies
with it; --break-lease takes a live lease at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from modelci.registry import open_registry
from tests.support.cli import CliResult
from tests.support.repos import GitRepo
from tests.support.waiting import wait_until

Run = Callable[..., CliResult]
MODELCI = [sys.executable, "-m", "modelci"]

SLOW = """\
import json, os, sys, time
marker = os.environ.get("GATE")
if marker and os.path.exists(marker):
    open(os.path.join(os.path.dirname(marker), "job.pid"), "w").write(str(os.getpid()))
    time.sleep(120)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"ok": True}, f)
print("score=1.0")
"""


@pytest.fixture
def slow(git_repo: Callable[..., GitRepo], tmp_path: Path) -> GitRepo:
    repo = git_repo()
    repo.write(".gitignore", ".modelci/\n")
    repo.write(
        "models/slow/model.toml",
        '[train]\nentrypoint = "train.py"\nmetrics = { score = "score=([0-9.]+)" }\n',
    )
    repo.write("models/slow/train.py", SLOW)
    repo.write("models/slow/requirements.txt", "")
    repo.commit("slow model")
    return repo


def status_of(repo: GitRepo, version: str) -> str | None:
    db = repo.root / ".modelci" / "registry.db"
    if not db.exists():
        return None
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        record = registry.get_version(version)
        return record.status if record else None


def start_training(repo: GitRepo, gate: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GATE": str(gate)}
    return subprocess.Popen(
        [*MODELCI, "-C", str(repo.root), "train", "slow"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_lease_blocks_a_second_pipeline_and_a_killed_one_blocks_nobody(
    slow: GitRepo, modelci: Run, tmp_path: Path
) -> None:
    version = f"slow-{slow.sha()[:12]}"
    gate = tmp_path / "gate"
    gate.write_text("hold")
    first = start_training(slow, gate)
    try:
        wait_until(
            lambda: (tmp_path / "job.pid").exists(), "the first job to start", deadline_s=120
        )
        assert status_of(slow, version) == "training"

        second = modelci("-C", slow.root, "train", "slow", "--json")
        assert second.code == 1
        assert "is being trained by" in second.json()["error"]["message"]
        assert "--break-lease" in second.json()["error"]["message"]

        job_pid = int((tmp_path / "job.pid").read_text())
        os.killpg(first.pid, signal.SIGKILL)  # the pipeline dies mid-train
        first.wait(timeout=30)
        wait_until(
            lambda: (
                not Path(f"/proc/{job_pid}").exists()
                or "zombie" in Path(f"/proc/{job_pid}/status").read_text().lower()
                or " Z " in Path(f"/proc/{job_pid}/stat").read_text()
            ),
            "the orphaned job to die with its pipeline",
            deadline_s=30,
        )
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()

    gate.unlink()  # the next job trains quickly
    third = modelci("-C", slow.root, "train", "slow", "--json")
    assert third.code == 0, third.stdout
    assert third.json()["versions"][0]["status"] == "ready"
    assert status_of(slow, version) == "ready"


def test_break_lease_takes_a_live_lease(slow: GitRepo, modelci: Run, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("hold")
    first = start_training(slow, gate)
    try:
        wait_until(
            lambda: (tmp_path / "job.pid").exists(), "the first job to start", deadline_s=120
        )
        gate.unlink()
        taken = modelci("-C", slow.root, "train", "slow", "--break-lease", "--json")
        assert taken.code == 0, taken.stdout
        assert taken.json()["versions"][0]["status"] == "ready"
        with open_registry("sqlite:///.modelci/registry.db", slow.root) as registry:
            record = registry.get_version(f"slow-{slow.sha()[:12]}")
            assert record is not None
            assert record.details["lease_taken_from"] == f"{socket.gethostname()}:{first.pid}"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
