"""Canary and linear rollouts through the local endpoint host (`[deploy.rollout]`), with real
traffic on loopback: the candidate runs beside the version that serves, takes its share of
the requests, and an alarm over its own requests sends them all back at once; a host killed
mid-rollout comes back routing the step's share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hosts import (
    DEADLINE_S,
    JSON,
    ROW,
    Toy,
    alive,
    get_json,
    host_url,
)
from tests.support.rolling import (
    FAILS_ONE_IN_THREE,
    Recorder,
    check_linear_steps,
    linear_rollout,
    rollout_seen,
    rollout_table,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

BAKE_S = 120.0  # far longer than the alarm takes: a rollback before it is the alarm's
CANARY_PERCENT = 20
MODELCI = [sys.executable, "-m", "modelci", "-C"]
DEPLOY = ("deploy", "toy", "--env", "staging", "--json")


def test_failing_canary_is_rolled_back_by_its_alarm_within_one_bake(toy: Toy) -> None:
    toy.repo.write(
        "modelci.toml",
        rollout_table(
            "canary",
            canary_percent=CANARY_PERCENT,
            bake_seconds=BAKE_S,
            max_error_rate=0.1,
            min_requests=6,
        ),
    )
    first = toy.version()
    gateway = toy.deployed("--version", first)["gateway_url"]  # nothing served: all at once
    assert toy.events("rollout_step") == []
    second = toy.version(bias=1.5, inference=FAILS_ONE_IN_THREE, test=False)
    with Recorder(f"{gateway}/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running", deadline_s=DEADLINE_S)
        began = time.monotonic()
        result = toy.deploy("--version", second, "--skip-tests")
        ended = time.monotonic()
        done = load.count()
        wait_until(lambda: load.count() >= done + 50, "answers after the rollback")
    assert result.code == 1, result.stdout + result.stderr
    outcome = result.json()
    assert outcome["status"] == "rolled_back" and outcome["version"] == second, outcome
    assert "alarm max_error_rate went off at 20%" in outcome["reason"]

    # the candidate took its share, failed one in three of it, and was cut off by its alarm:
    # fewer than canary_percent x its error rate of all requests failed during the rollout
    during = load.between(began, ended)
    failed = [a for a in during if a.status != 200]
    assert {a.value for a in during if a.status == 200} == {3.5, 4.5}
    assert failed and {a.status for a in failed} == {500}
    assert len(failed) < CANARY_PERCENT / 100 * (1 / 3) * len(during), (len(failed), len(during))
    # all traffic is back on the old version at once
    after = [a for a in load.answers if a.at > ended]
    assert after and {(a.status, a.value) for a in after} == {(200, 3.5)}

    # recorded: one step, baked less than its bake, ended by the alarm with its measure
    [step] = toy.events("rollout_step")
    assert step.version == second and step.details["percent"] == CANARY_PERCENT
    [failure] = toy.events("deploy_failed")
    assert failure.details["alarm"] == "max_error_rate"
    assert failure.details["threshold"] == 0.1 and failure.details["measured"] > 0.1
    assert failure.details["percent"] == CANARY_PERCENT and failure.details["requests"] >= 6
    rollback = toy.events("rollback")[0]
    assert rollback.to_version == first and rollback.details["automatic"] is True
    assert rollback.details["alarm"] == "max_error_rate"
    assert rollback.time is not None and step.time is not None
    assert rollback.time - step.time < timedelta(seconds=BAKE_S)
    assert toy.pointer() == first
    [endpoint] = toy.endpoints().values()
    assert endpoint["version"] == first and "rollout" not in endpoint


def test_healthy_candidate_goes_through_every_linear_step(toy: Toy) -> None:
    toy.repo.write(
        "modelci.toml",
        rollout_table(
            "linear",
            linear_step_percent=25,
            bake_seconds=2.0,
            max_error_rate=0.05,
            max_model_error_rate=0.05,
            min_requests=5,
        ),
    )
    first = toy.version()
    gateway = toy.deployed("--version", first)["gateway_url"]
    second = toy.version(bias=1.5)
    with Recorder(f"{gateway}/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running", deadline_s=DEADLINE_S)
        seen, began, finished = linear_rollout(toy, load, second, deadline_s=DEADLINE_S * 2)
    check_linear_steps(toy, load, seen, (began, finished), first, second)
    [endpoint] = toy.endpoints().values()
    assert endpoint["version"] == second and "rollout" not in endpoint


def test_a_rollout_whose_deploy_is_killed_goes_back_to_the_old_version(toy: Toy) -> None:
    """No one is left to watch the canary's alarms: the host (or the next command) puts the
    previous version back rather than finish the rollout."""
    toy.repo.write("modelci.toml", rollout_table("canary", canary_percent=50, bake_seconds=BAKE_S))
    first = toy.version()
    gateway = toy.deployed("--version", first)["gateway_url"]
    second = toy.version(bias=1.5)
    with Recorder(f"{gateway}/invocations") as load:
        deploy = subprocess.Popen(
            [*MODELCI, str(toy.root), "deploy", "toy", "--env", "staging", "--version", second],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: (rollout_seen(toy) or {}).get("candidate_percent") == 50,
            "the canary takes its share",
            deadline_s=DEADLINE_S,
        )
        wait_until(
            lambda: any(a.value == 4.5 for a in load.between(0, time.monotonic())),
            "the candidate answers",
            deadline_s=DEADLINE_S,
        )
        deploy.kill()
        deploy.wait(timeout=30)
        killed = time.monotonic()
        wait_until(lambda: toy.pointer() == first, "the old version is back", deadline_s=60)
        wait_until(
            lambda: (
                [(e["version"], "rollout" in e) for e in toy.endpoints().values()]
                == [(first, False)]
            ),
            "the host stopped the candidate",
        )
        stopped = time.monotonic()
        done = load.count()
        wait_until(lambda: load.count() >= done + 50, "answers after it")
    assert {a.status for a in load.answers} == {200}
    assert {a.value for a in load.between(0, killed)} == {3.5, 4.5}
    assert {a.value for a in load.answers if a.at > stopped} == {3.5}
    [failure] = toy.events("deploy_failed")
    assert "left unfinished" in failure.details["reason"]
    assert toy.events("rollback")[0].to_version == first


def _split(base: str) -> tuple[int, dict[str, Any]] | None:
    """(the host's pid, its endpoint's state) once its canary is ready at its step's share;
    None meanwhile, or while nothing answers (the host is being started again)."""
    document = get_json(f"{base}/-/endpoints")
    if document is None:
        return None
    endpoint: dict[str, Any] = document["endpoints"].get("toy-staging") or {}
    split = endpoint.get("rollout") or {}
    if split.get("ready") and split.get("percent") == CANARY_PERCENT and split.get("step"):
        return int(document["pid"]), endpoint
    return None


def test_a_host_killed_mid_rollout_comes_back_routing_the_step_share(
    toy: Toy, tmp_path: Path
) -> None:
    """The host process is killed (SIGKILL) while a canary bakes; its supervisor starts it
    again, and the new host serves the previous version with the candidate beside it at the
    step's share, not the candidate alone, while the deploy still bakes. The deploy then ends
    as before: its alarm goes off on the candidate's own requests and puts the old one back."""
    toy.repo.write(
        "modelci.toml",
        rollout_table(
            "canary",
            canary_percent=CANARY_PERCENT,
            bake_seconds=BAKE_S * 5,  # ended by the alarm, never by the bake
            max_error_rate=0.1,
            min_requests=40,  # the 20 counted below are too few to judge
        ),
    )
    first = toy.version()
    gateway = toy.deployed("--version", first)["gateway_url"]
    base = host_url(toy.root)
    assert base is not None
    second = toy.version(bias=1.5, inference=FAILS_ONE_IN_THREE, test=False)
    out, err = tmp_path / "deploy.json", tmp_path / "deploy.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        deploy = subprocess.Popen(
            [*MODELCI, str(toy.root), *DEPLOY, "--version", second, "--skip-tests"],
            stdout=stdout,
            stderr=stderr,
        )

    def log() -> str:
        return err.read_text(errors="replace")

    killed, before = wait_until(
        lambda: _split(base), "the canary is ready", deadline_s=DEADLINE_S, process=deploy
    )
    assert before["version"] == first
    toy.endpoints()  # its processes are checked for leftovers at the end
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: not alive(killed), "the host is gone")

    def restarted() -> tuple[int, dict[str, Any]] | None:
        found = _split(base)
        return found if found is not None and found[0] != killed else None

    pid, after = wait_until(
        restarted,
        "the restarted host routes the canary's share",
        deadline_s=DEADLINE_S * 2,
        process=deploy,
        details=log,
    )
    assert after["version"] == first  # the previous version serves, the candidate beside it
    assert pid != killed and toy.endpoints()
    # counted by real requests, one at a time: the step's share to the candidate, no more
    answers = []
    with httpx.Client(headers=JSON, timeout=30) as client:
        for _ in range(100):
            answer = client.post(f"{gateway}/invocations", content=ROW)
            answers.append(answer.json()["predictions"][0] if answer.status_code == 200 else 500)
    candidate = [a for a in answers if a != 3.5]
    assert len(candidate) == CANARY_PERCENT, answers
    assert set(candidate) <= {4.5, 500} and 4.5 in candidate
    assert deploy.poll() is None, log()  # still baking
    assert (rollout_seen(toy) or {}).get("candidate_percent") == CANARY_PERCENT
    [step] = toy.events("rollout_step")  # the restart took no step of its own
    assert step.version == second and step.details["percent"] == CANARY_PERCENT

    # ... and the deploy ends as it would have: the alarm, over the candidate's requests
    with Recorder(f"{gateway}/invocations") as load:
        wait_until(lambda: deploy.poll() is not None, "the alarm ends the deploy", details=log)
        ended = time.monotonic()
        done = load.count()
        wait_until(lambda: load.count() >= done + 50, "answers after it")
    assert deploy.returncode == 1, log()
    outcome = json.loads(out.read_text())
    assert outcome["status"] == "rolled_back", outcome
    assert "alarm max_error_rate went off at 20%" in outcome["reason"]
    [failure] = toy.events("deploy_failed")
    assert failure.details["alarm"] == "max_error_rate" and failure.details["requests"] >= 40
    assert toy.pointer() == first
    assert {(a.status, a.value) for a in load.answers if a.at > ended} == {(200, 3.5)}
