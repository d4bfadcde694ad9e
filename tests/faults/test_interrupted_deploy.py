"""A killed deploy still ends: a `modelci deploy` killed (SIGKILL) after it moved the pointer
and while it waited for the new version's health check leaves its intent in the registry, and
the endpoint host or the next command finishes it: the version that cannot serve is replaced
by the previous one with the reason recorded, the one that serves is marked complete. Either
way `status` then agrees with what is served."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx

from modelci.registry import open_registry
from modelci.registry.base import Pointer
from tests.support.hosts import JSON, REGISTRY, ROW, Toy, alive, host_url, prediction
from tests.support.kills import Gate, kill_when, start_modelci
from tests.support.waiting import wait_until


def _pointer(root: Path) -> Pointer | None:
    """The staging pointer as the registry holds it (read without any command's recovery)."""
    with open_registry(REGISTRY, root) as registry:
        return registry.get_pointer("toy", "staging")


def _killed_waiting_for_health(toy: Toy, gate: Gate, candidate: str, log: Path) -> None:
    """Start a deploy of `candidate` and SIGKILL it once the pointer names it and its version
    server is held loading: the deploy is waiting on the health check."""
    deploy = start_modelci(toy.root, "deploy", "toy", "--env", "staging", "--skip-tests", log=log)

    def waiting() -> bool:
        pointer = _pointer(toy.root)
        return gate.loading() and pointer is not None and pointer.version == candidate

    kill_when(
        deploy,
        waiting,
        f"the deploy moved the pointer to {candidate} and waits for its health check",
        deadline_s=120,
        details=lambda: log.read_text(errors="replace")[-2000:],
    )
    moved = _pointer(toy.root)
    assert moved is not None and moved.version == candidate


def test_a_deploy_killed_before_its_health_check_is_rolled_back_by_the_host(
    toy: Toy, tmp_path: Path
) -> None:
    before = toy.version(bias=0.5)
    toy.deployed()
    gate = Gate(tmp_path / "gate")
    broken = toy.version(bias=1.5, inference=gate.inference(), test=False)

    _killed_waiting_for_health(toy, gate, broken, tmp_path / "deploy.log")
    gate.release(fail=True)  # the held version server now fails to load

    # no command runs: the host itself sees that the deploy's process is gone
    back = wait_until(
        lambda: (p := _pointer(toy.root)) is not None and p.version == before and p,
        f"the host puts {before} back",
        deadline_s=60,
    )
    assert back.pending is None
    [failed] = toy.events("deploy_failed")
    assert failed.to_version == broken and failed.from_version == before
    assert "ended before its health check" in failed.details["reason"]
    assert "cannot load its model" in failed.details["reason"]
    [rollback] = toy.events("rollback")
    assert rollback.details["automatic"] is True and rollback.to_version == before

    # status agrees with what is served, and the endpoint answers with the previous version
    assert toy.pointer() == before
    assert toy.endpoints()["toy-staging"]["version"] == before
    url = host_url(toy.root)
    answer = httpx.post(f"{url}/endpoints/toy-staging/invocations", content=ROW, headers=JSON)
    assert prediction(answer) == 3.5


def test_a_deploy_killed_with_its_host_is_finished_by_the_next_command(
    toy: Toy, tmp_path: Path
) -> None:
    before = toy.version(bias=0.5)
    toy.deployed()
    gate = Gate(tmp_path / "gate")
    candidate = toy.version(bias=1.5, inference=gate.inference(), test=False)

    _killed_waiting_for_health(toy, gate, candidate, tmp_path / "deploy.log")
    toy.endpoints()  # its processes are checked for at the end
    host = _host_pid(toy.root)
    os.kill(host, signal.SIGKILL)  # and the host with it: nothing is left to finish it
    wait_until(lambda: not alive(host), "the killed host is gone")
    gate.release(fail=False)
    stuck = _pointer(toy.root)
    assert stuck is not None and stuck.version == candidate

    status = toy.modelci("-C", toy.root, "status", "--json")
    assert status.code == 0, status.stdout + status.stderr
    completions = toy.events("deploy_completed")
    assert len(completions) == 1, (status.stdout, toy.events())
    [completed] = completions
    assert completed.to_version == candidate and completed.from_version == before
    assert "ended before its health check" in completed.details["reason"]
    [model] = status.json()["models"]
    staging = model["environments"]["staging"]
    assert staging["version"] == candidate and "pending" not in staging, staging
    settled = _pointer(toy.root)
    assert settled is not None and settled.pending is None
    assert settled.generation == stuck.generation  # completed in place, not moved again
    assert toy.events("deploy_failed") == []
    assert toy.endpoints()["toy-staging"]["version"] == candidate
    url = host_url(toy.root)
    answer = httpx.post(f"{url}/endpoints/toy-staging/invocations", content=ROW, headers=JSON)
    assert prediction(answer) == 4.5


def _host_pid(root: Path) -> int:
    return int(json.loads((root / ".modelci/serve/serve.json").read_text())["pid"])


def test_a_deploy_killed_with_its_host_is_put_back_by_the_next_run(
    toy: Toy, tmp_path: Path
) -> None:
    before = toy.version(bias=0.5)
    toy.deployed()
    gate = Gate(tmp_path / "gate")
    broken = toy.version(bias=1.5, inference=gate.inference(), test=False)

    _killed_waiting_for_health(toy, gate, broken, tmp_path / "deploy.log")
    toy.endpoints()
    host = _host_pid(toy.root)
    os.kill(host, signal.SIGKILL)
    wait_until(lambda: not alive(host), "the killed host is gone")
    gate.release(fail=True)

    ran = toy.modelci("-C", toy.root, "run", "--json")
    assert "ended before its health check" in ran.stderr  # finished first thing
    # then the broken version, never deployed, is taken up again, and fails
    [model] = ran.json()["models"]
    assert ran.code == 1 and model["status"] == "failed", ran.stdout
    back = _pointer(toy.root)
    assert back is not None and back.version == before and back.pending is None, back
    interrupted = [
        e
        for e in toy.events("deploy_failed")
        if "ended before its health check" in e.details["reason"]
    ]
    assert [e.to_version for e in interrupted] == [broken]
    assert toy.pointer() == before
    assert toy.endpoints()["toy-staging"]["version"] == before
