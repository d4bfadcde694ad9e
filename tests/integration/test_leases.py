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
from tests.support.ports import free_port
from tests.support.repos import GitRepo
from tests.support.toy import make_toy
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


# the toy (tests/support/toy.py), whose training holds while GATE exists
HELD = """
marker = os.environ.get("GATE")
if marker and os.path.exists(marker):
    import time
    open(os.path.join(os.path.dirname(marker), "job.pid"), "w").write(str(os.getpid()))
    while os.path.exists(marker):
        time.sleep(0.05)
"""


def test_run_waits_for_a_live_lease_and_uses_its_result(
    git_repo: Callable[..., GitRepo], modelci: Run, tmp_path: Path
) -> None:
    repo = git_repo()
    make_toy(repo, extra=HELD)
    version = f"toy-{repo.sha()[:12]}"
    gate = tmp_path / "gate"
    gate.write_text("hold")
    port = str(free_port())
    first = subprocess.Popen(
        [*MODELCI, "-C", str(repo.root), "train", "toy"],
        env={**os.environ, "GATE": str(gate)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = tmp_path / "run.log"
    second = None
    try:
        wait_until(
            lambda: (tmp_path / "job.pid").exists(), "the first job to start", deadline_s=120
        )
        with log.open("wb") as stderr:
            second = subprocess.Popen(
                [*MODELCI, "-C", str(repo.root), "run"],  # progress lines: not --json
                env={**os.environ, "MODELCI_SERVE_PORT": port},
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        wait_until(
            lambda: "waiting: " in log.read_text(),
            "the second pipeline to say that it waits",
            deadline_s=120,
            process=second,
            details=log.read_text,
        )
        assert f"{version} is being trained by" in log.read_text()
        assert second.poll() is None  # it waits, it does not fail
        gate.unlink()  # the first job ends
        assert first.wait(timeout=120) == 0
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 0, out.decode() + log.read_text()
        row = next(line.split() for line in out.decode().splitlines() if line.startswith("toy "))
        # model, version, build, train, test, deploy: the first pipeline's training, used
        assert row[1:6] == [version, "cached", "cached", "done", "done"], out.decode()
        assert status_of(repo, version) == "ready"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        stopped = modelci("-C", repo.root, "serve", "--stop")
        assert stopped.code == 0, stopped.stdout + stopped.stderr
