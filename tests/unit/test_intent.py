"""Who finishes a deploy: a pending pointer is orphaned once the process that made the deploy is
gone (a real process, ended), or, for a process on another machine, once its time is up."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

from modelci.deploy.intent import new_intent, orphaned
from modelci.processes import owner, owner_alive
from modelci.registry.base import PendingDeploy, Pointer


def _pointer(pending: PendingDeploy | None) -> Pointer:
    return Pointer("toy", "staging", "toy-000000000002", 2, datetime.now(UTC), None, pending)


def _ended_owner() -> dict[str, object]:
    """The owner record of a real process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return {**owner(), "pid": child.pid, "start": None}


def test_this_process_owns_a_live_intent() -> None:
    intent = new_intent("toy-000000000001", "deploy")
    assert owner_alive(intent.owner)
    assert not orphaned(_pointer(intent))
    assert not orphaned(_pointer(None))


def test_an_intent_whose_process_ended_is_orphaned_at_once() -> None:
    gone = PendingDeploy("toy-000000000001", "deploy", _ended_owner(), time.time() + 900)
    assert not owner_alive(gone.owner)
    assert orphaned(_pointer(gone))


def test_a_reused_pid_is_not_the_owner() -> None:
    other = {**owner(), "start": "1"}  # this pid, started at another time: another process
    assert not owner_alive(other)


def test_another_machines_intent_is_trusted_until_it_expires() -> None:
    remote = {"host": "elsewhere.invalid", "pid": 1, "start": "1"}
    assert owner_alive(remote)
    assert not orphaned(_pointer(PendingDeploy(None, "deploy", remote, time.time() + 60)))
    assert orphaned(_pointer(PendingDeploy(None, "deploy", remote, time.time() - 1)))


def test_a_live_local_owner_is_waited_for_past_its_expiry() -> None:
    slow = PendingDeploy(None, "deploy", owner(), time.time() - 1)  # a SageMaker update, say
    assert not orphaned(_pointer(slow))


def test_an_intent_survives_its_json() -> None:
    intent = new_intent(None, "rollback")
    assert PendingDeploy.from_json(intent.to_json()) == intent
    assert PendingDeploy.from_json(None) is None
    assert PendingDeploy.from_json({"previous": "x"}) is None  # not one this modelci wrote
