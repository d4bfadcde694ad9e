"""The endpoint host and its version servers live and die together: a host killed outright
takes its version servers with it and its supervisor starts it again (up to a limit), killing
the supervisor takes everything with it, a new host starts its own servers, a stop during
start-up leaves nothing behind, and a version server killed under load costs at most the
requests it had in flight."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelci.registry import open_registry
from modelci.registry.base import Event
from modelci.serve.supervisor import RESTART_LIMIT
from tests.support.churn import train_churn_model
from tests.support.hosts import (
    INFERENCE,
    JSON,
    REGISTRY,
    ROW,
    Load,
    Toy,
    alive,
    get_json,
    prediction,
    processes_of,
)
from tests.support.ports import free_port
from tests.support.server_process import running_server
from tests.support.waiting import wait_until

THREADS = 8
# model_fn takes a minute in a version server: a version that stays "starting" for as long
# as a test needs
SLOW_START = (
    INFERENCE.replace("def model_fn(model_dir):", "def _model_fn(model_dir):")
    + """
import sys, time

def model_fn(model_dir):
    if sys.argv[0].endswith("server.py"):  # not training's signature introspection
        time.sleep(60)
    return _model_fn(model_dir)
"""
)


def _state(root: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((root / ".modelci/serve/serve.json").read_text())
    return state


def _host_pid(root: Path) -> int:
    return int(_state(root)["pid"])


def _running_host(root: Path) -> int | None:
    """The host's pid while its state file is there (between two restarts it is not)."""
    try:
        return _host_pid(root)
    except (OSError, ValueError, KeyError):
        return None


def _version_servers(root: Path) -> list[int]:
    """Live version-server processes serving from the repository's .modelci folder."""
    found = []
    for pid in processes_of(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"modelci.runtime.server" in command:
            found.append(pid)
    return found


def test_serve_killed_outright_takes_its_host_and_servers_and_comes_back(toy: Toy) -> None:
    version = toy.version()
    gateway = toy.deployed()["gateway_url"]
    [endpoint] = toy.endpoints().values()
    host = _host_pid(toy.root)
    supervisor = int(_state(toy.root)["supervisor"])
    assert supervisor != host and alive(supervisor)
    assert _version_servers(toy.root) == [endpoint["pid"]]

    os.kill(supervisor, signal.SIGKILL)  # the whole thing: nothing is left to restart it
    killed = time.monotonic()
    wait_until(lambda: not alive(host), "the host exits with its supervisor", deadline_s=10)
    wait_until(
        lambda: not alive(endpoint["pid"]), "the version server exits with its host", deadline_s=10
    )
    wait_until(
        lambda: not processes_of(toy.root), "no process of the repository is left", deadline_s=10
    )

    # the next deploy starts a new host, which starts its own version server
    outcome = toy.deploy()
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert outcome.json()["status"] == "unchanged" and outcome.json()["version"] == version
    gateway = outcome.json()["gateway_url"]
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5
    back = time.monotonic() - killed
    print(f"\nserving again {back:.2f} s after kill -9 of `modelci serve` (deploy included)")
    [again] = toy.endpoints().values()
    assert again["pid"] != endpoint["pid"] and again["restarts"] == 0
    assert _host_pid(toy.root) != host
    assert _version_servers(toy.root) == [again["pid"]]


def test_killed_host_is_restarted_by_its_supervisor(toy: Toy) -> None:
    version = toy.version()
    gateway = toy.deployed()["gateway_url"]
    [endpoint] = toy.endpoints().values()
    host = _host_pid(toy.root)
    supervisor = int(_state(toy.root)["supervisor"])

    os.kill(host, signal.SIGKILL)  # the host only: its supervisor lives on
    killed = time.monotonic()
    wait_until(
        lambda: not alive(endpoint["pid"]), "the version server exits with its host", deadline_s=10
    )

    def answers() -> bool:  # no modelci command runs: the supervisor brings it back
        try:
            answer = httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON, timeout=10)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and prediction(answer) == 3.5

    wait_until(answers, "the endpoint answers again by itself", deadline_s=60)
    print(f"\nserving again {time.monotonic() - killed:.2f} s after the host's kill -9, alone")
    state = _state(toy.root)
    assert state["pid"] != host and state["supervisor"] == supervisor and alive(supervisor)
    assert gateway.startswith(state["url"])  # the same socket, kept by the supervisor
    [again] = toy.endpoints().values()
    assert again["version"] == version and again["pid"] != endpoint["pid"]
    assert _version_servers(toy.root) == [again["pid"]]
    log = (toy.root / ".modelci/serve/host.log").read_text()
    assert f"the endpoint host (pid {host}) was killed by SIGKILL; starting it again" in log


def test_a_host_that_keeps_dying_is_given_up_on(toy: Toy) -> None:
    toy.version()
    toy.deployed()
    supervisor = int(_state(toy.root)["supervisor"])
    killed: list[int] = []
    for _ in range(RESTART_LIMIT + 1):
        host = wait_until(
            lambda: (pid := _running_host(toy.root)) not in killed and pid and alive(pid) and pid,
            "the supervisor starts the host again",
            deadline_s=60,
        )
        os.kill(host, signal.SIGKILL)
        killed.append(host)
    wait_until(lambda: not alive(supervisor), "the supervisor gives up", deadline_s=30)
    wait_until(
        lambda: not processes_of(toy.root), "no process of the repository is left", deadline_s=10
    )
    log = (toy.root / ".modelci/serve/host.log").read_text()
    assert log.count("; starting it again in ") == RESTART_LIMIT
    assert f"restarted {RESTART_LIMIT} times in" in log and "giving up" in log
    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json() == {"stopped": False, "running": False}


def test_serve_stop_during_start_up_leaves_no_process(toy: Toy) -> None:
    version = toy.version(inference=SLOW_START, test=False)
    with open_registry(REGISTRY, toy.root) as registry:
        registry.set_pointer(
            "toy", "staging", version, expected_generation=None, event=Event("deploy", "toy")
        )
    url = toy.hosts.start(toy.root)
    starting = wait_until(lambda: _version_servers(toy.root), "the host starts the version server")
    assert get_json(f"{url}/-/endpoints")["endpoints"] == {}  # not ready: not routed yet

    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json()["stopped"] is True
    wait_until(
        lambda: not any(alive(pid) for pid in starting),
        "the starting server is stopped",
        deadline_s=30,
    )
    wait_until(
        lambda: not processes_of(toy.root), "no process of the repository is left", deadline_s=30
    )


def test_serve_stop_before_the_host_listens_stops_it(toy: Toy) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "modelci", "-C", str(toy.root), "serve", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = toy.root / ".modelci/serve/host.lock"
        wait_until(lambda: lock.exists() and lock.read_text().strip(), "the host takes its lock")
        stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
        assert stopped.code == 0, stopped.stdout + stopped.stderr
        assert stopped.json()["pid"] == process.pid
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not processes_of(toy.root)


def test_version_server_killed_under_load_fails_only_what_was_in_flight(toy: Toy) -> None:
    toy.version()
    gateway = toy.deployed()["gateway_url"]
    [before] = toy.endpoints().values()
    with Load(f"{gateway}/invocations", threads=THREADS, cap=4000, pause_s=0.01) as load:
        wait_until(lambda: load.count() >= 100, "the load is running", deadline_s=30)
        os.kill(before["pid"], signal.SIGKILL)
        killed_at = load.count()

        def restarted() -> bool:
            endpoint = toy.endpoints()["toy-staging"]
            return bool(endpoint["healthy"] and endpoint["restarts"] == 1)

        wait_until(restarted, "the killed server is restarted", deadline_s=30)
        wait_until(
            lambda: load.count() >= killed_at + 400, "answers after the restart", deadline_s=30
        )
        assert load.count() < load.cap, "the cap was reached before the restart was over"
    total = load.count()
    fraction = len(load.failures) / total
    print(f"\n{len(load.failures)} of {total} requests failed ({fraction:.2%}) when the version")
    print(f"server was killed under load from {THREADS} threads: {load.failures[:3]}")
    assert len(load.failures) <= THREADS  # at most one in flight per client thread
    assert fraction <= 0.05
    [after] = toy.endpoints().values()
    assert after["pid"] != before["pid"] and after["healthy"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def test_workers_of_a_killed_version_server_exit(tmp_path_factory: pytest.TempPathFactory) -> None:
    model_dir = train_churn_model(tmp_path_factory)
    with running_server("--model-dir", str(model_dir), "--workers", "2") as server:
        workers = wait_until(
            lambda: len(_children(server.process.pid)) >= 2 and _children(server.process.pid),
            "the server's two workers run",
            deadline_s=30,
        )
        os.kill(server.process.pid, signal.SIGKILL)
        try:
            wait_until(
                lambda: not any(alive(w) for w in workers),
                "its workers exit with it",
                deadline_s=10,
            )
        finally:
            for worker in workers:  # never leave one behind, even when the test fails
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)


def test_a_server_that_cannot_restart_is_retried_with_a_pause(toy: Toy) -> None:
    version = toy.version()
    gateway = toy.deployed()["gateway_url"]
    [before] = toy.endpoints().values()
    # the version's next start fails to load its handler (a changed artifact would be refused
    # before any start: tests/faults/test_tampered_artifacts.py)
    handler = toy.root / f".modelci/serve/code/{version}/models/toy/inference.py"
    saved = handler.read_text()
    handler.write_text('raise RuntimeError("a broken handler")\n')
    log = toy.root / f".modelci/serve/logs/toy-staging-{version}.log"
    os.kill(before["pid"], signal.SIGKILL)
    wait_until(
        lambda: "last_error" in toy.endpoints()["toy-staging"], "a restart fails", deadline_s=30
    )
    window = time.monotonic() + 4.0  # less than RESTART_BACKOFF_S: one retry at most
    while time.monotonic() < window:
        assert toy.endpoints()["toy-staging"]["healthy"] is False
        time.sleep(0.2)  # the poll interval while watching for a retry storm
    attempts = log.read_text().count("RuntimeError: a broken handler")
    assert 1 <= attempts <= 2, attempts

    handler.write_text(saved)
    # a request sent now waits for the next restart, which loads the repaired handler
    answer = httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON, timeout=60)
    assert prediction(answer) == 3.5
    [after] = toy.endpoints().values()
    assert after["healthy"] and after["restarts"] == 1 and after["pid"] != before["pid"]
