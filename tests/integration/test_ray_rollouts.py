"""Canary and linear rollouts on Ray Serve (`[deploy] backend = "ray"`), on the session's real
two-node cluster, with real traffic through Serve's proxy on 127.0.0.1: the candidate runs as
its own application beside the serving version, whose replicas route it exactly its share of
the requests, and an alarm over its own requests sends them all back at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.support.cli import CliResult
from tests.support.hosts import TRAIN, Hosts, Toy
from tests.support.ray_cluster import RayCluster
from tests.support.repos import GitRepo
from tests.support.rolling import (
    FAILS_ONE_IN_THREE,
    Recorder,
    check_linear_steps,
    linear_rollout,
    rollout_table,
)
from tests.support.toy import write_toy
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.slow]

Run = Callable[..., CliResult]
BAKE_S = 120.0  # far longer than the alarm takes: a rollback before it is the alarm's
CANARY_PERCENT = 20
DEADLINE_S = 180.0  # a Serve application's first start installs its runtime environment
ON_RAY = '[deploy]\nbackend = "ray"\n\n'


def applications(cluster: RayCluster) -> dict[str, Any]:
    """Serve's applications on the cluster, by name."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    found: dict[str, Any] = (
        ServeSubmissionClient(cluster.dashboard_url).get_serve_details().get("applications") or {}
    )
    return found


@pytest.fixture
def toy(on_ray: RayCluster, git_repo: Callable[..., GitRepo], modelci: Run) -> Iterator[Toy]:
    """The toy model deployed on the cluster's Serve; every application deleted afterwards."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    repo = git_repo()
    write_toy(repo, "", train=TRAIN, inference=None)
    yield Toy(repo, modelci, Hosts(modelci))
    ServeSubmissionClient(on_ray.dashboard_url).delete_applications()
    wait_until(lambda: not applications(on_ray), "Serve's applications are deleted")


def test_failing_canary_on_ray_is_rolled_back_by_its_alarm_within_one_bake(
    on_ray: RayCluster, toy: Toy
) -> None:
    toy.repo.write(
        "modelci.toml",
        ON_RAY
        + rollout_table(
            "canary",
            canary_percent=CANARY_PERCENT,
            bake_seconds=BAKE_S,
            max_error_rate=0.1,
            min_requests=6,
        ),
    )
    first = toy.version(test=False)
    gateway = toy.deployed("--version", first, "--skip-tests")["gateway_url"]
    assert gateway == f"{on_ray.serve_url}/endpoints/toy-staging"
    second = toy.version(bias=1.5, inference=FAILS_ONE_IN_THREE, test=False)
    with Recorder(f"{gateway}/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running")
        began = time.monotonic()
        result = toy.deploy("--version", second, "--skip-tests")
        ended = time.monotonic()
        done = load.count()
        wait_until(lambda: load.count() >= done + 50, "answers after the rollback")
    assert result.code == 1, result.stdout + result.stderr
    outcome = result.json()
    assert outcome["status"] == "rolled_back" and outcome["version"] == second, outcome
    assert f"alarm max_error_rate went off at {CANARY_PERCENT}%" in outcome["reason"]

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

    [step] = toy.events("rollout_step")
    assert step.version == second and step.details["percent"] == CANARY_PERCENT
    [failure] = toy.events("deploy_failed")
    assert failure.details["alarm"] == "max_error_rate"
    assert failure.details["threshold"] == 0.1 and failure.details["measured"] > 0.1
    assert failure.details["percent"] == CANARY_PERCENT and failure.details["requests"] >= 6
    rollback = toy.events("rollback")[0]
    assert rollback.to_version == first and rollback.details["alarm"] == "max_error_rate"
    assert rollback.time is not None and step.time is not None
    assert rollback.time - step.time < timedelta(seconds=BAKE_S)
    assert toy.pointer() == first
    # the candidate's application is gone; the old version's serves with no rollout
    serving = wait_until(
        lambda: (found := applications(on_ray)).keys() == {"toy-staging"} and found,
        "the candidate's application is deleted",
    )
    config = serving["toy-staging"]["deployed_app_config"]
    assert [d["user_config"] for d in config["deployments"]] == [{"version": first}]


def test_healthy_candidate_on_ray_goes_through_every_linear_step(
    on_ray: RayCluster, toy: Toy
) -> None:
    toy.repo.write(
        "modelci.toml",
        ON_RAY
        + rollout_table(
            "linear",
            linear_step_percent=25,
            bake_seconds=2.0,
            max_error_rate=0.05,
            max_model_error_rate=0.05,
            min_requests=5,
        ),
    )
    first = toy.version(test=False)
    gateway = toy.deployed("--version", first, "--skip-tests")["gateway_url"]
    second = toy.version(bias=1.5, test=False)
    with Recorder(f"{gateway}/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running")
        seen, began, finished = linear_rollout(
            toy, load, second, "--skip-tests", deadline_s=DEADLINE_S * 2
        )
    check_linear_steps(toy, load, seen, (began, finished), first, second)
    # the new version took the endpoint's own application; the candidate's is gone
    serving = wait_until(
        lambda: (found := applications(on_ray)).keys() == {"toy-staging"} and found,
        "the candidate's application is deleted",
    )
    config = serving["toy-staging"]["deployed_app_config"]
    assert [d["user_config"] for d in config["deployments"]] == [{"version": second}]
