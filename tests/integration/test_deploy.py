"""`modelci deploy`, `serve` and `invoke` with real processes: the endpoint host, each version's
server in the model's own environment, and real HTTP on 127.0.0.1.

Every test's repository takes its model environment from one folder shared by the module (its
`.modelci/envs` links there): the toy model's environment is the same in every repository, and
building it once keeps this file fast. Every test stops the hosts it started and checks that no
process of its repository is left.
"""

from __future__ import annotations

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

from tests.support.hosts import (
    CANNOT_LOAD,
    DEADLINE_S,
    FAILS_ON_SMOKE_ROW,
    JSON,
    OUTCOME_KEYS,
    ROW,
    SPEC,
    Load,
    Toy,
    host_url,
    prediction,
)
from tests.support.ports import free_port
from tests.support.toy import INFERENCE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


# --- deploy and invoke -------------------------------------------------------------------------


def test_deploy_to_staging_then_invoke(toy: Toy, tmp_path: Path) -> None:
    version = toy.version()
    result = toy.deploy()
    assert result.code == 0, result.stdout + result.stderr
    outcome = result.json()
    assert set(outcome) == OUTCOME_KEYS
    assert outcome["model"] == "toy" and outcome["environment"] == "staging"
    assert outcome["endpoint"] == "toy-staging" and outcome["version"] == version
    assert outcome["previous_version"] is None and outcome["status"] == "deployed"
    assert outcome["reason"] is None
    gateway, own = outcome["gateway_url"], outcome["url"]
    assert gateway == f"{host_url(toy.root)}/endpoints/toy-staging"
    assert own.startswith("http://127.0.0.1:") and own != host_url(toy.root)
    assert toy.pointer() == version

    body = tmp_path / "row.json"
    body.write_bytes(ROW)
    invoked = toy.modelci("-C", toy.root, "invoke", "toy-staging", "--data", body)
    assert invoked.code == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"predictions": [3.5]}
    invoked = toy.modelci("-C", toy.root, "invoke", "toy-staging", "--data", body, "--json")
    assert invoked.code == 0 and invoked.json()["status"] == 200
    assert json.loads(invoked.json()["body"]) == {"predictions": [3.5]}

    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5
    assert prediction(httpx.post(f"{own}/invocations", content=ROW, headers=JSON)) == 3.5
    ping = httpx.get(f"{gateway}/ping")
    assert ping.status_code == 200
    metadata = httpx.get(f"{gateway}/metadata").json()
    assert metadata["version"] == version and metadata["environment"] == "staging"
    assert metadata["commit"] == toy.repo.sha() and metadata["model"] == "toy"
    [endpoint] = toy.endpoints().values()
    assert endpoint["version"] == version and endpoint["healthy"] is True
    assert endpoint["url"] == own and endpoint["restarts"] == 0

    # bad requests get a 4xx with a message, and the host keeps serving
    unknown = httpx.post(
        f"{host_url(toy.root)}/endpoints/nope-staging/invocations", content=ROW, headers=JSON
    )
    assert unknown.status_code == 404
    assert "'nope-staging' is not deployed" in unknown.json()["message"]
    assert "deployed endpoints: toy-staging" in unknown.json()["message"]  # what exists
    bad = httpx.post(f"{gateway}/invocations", content=b"[[1, 2", headers=JSON)
    assert bad.status_code == 400 and "not valid JSON" in bad.text
    missing = toy.modelci("-C", toy.root, "invoke", "nope-staging", "--data", body, "--json")
    assert missing.code == 1 and missing.json()["status"] == 404
    assert "'nope-staging' is not deployed" in missing.json()["body"]
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5


def test_aws_sdk_invokes_the_endpoint(toy: Toy) -> None:
    boto3 = pytest.importorskip("boto3")
    toy.version()
    toy.deployed()
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=host_url(toy.root),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    answer = client.invoke_endpoint(
        EndpointName="toy-staging", Body=ROW, ContentType="application/json"
    )
    assert answer["ContentType"] == "application/json"
    assert json.loads(answer["Body"].read()) == {"predictions": [3.5]}


def test_second_version_swaps_and_older_commit_is_refused(toy: Toy) -> None:
    first = toy.version()
    old_url = toy.deployed()["url"]
    second = toy.version(bias=1.5)
    outcome = toy.deployed()
    assert outcome["version"] == second and outcome["previous_version"] == first
    assert outcome["url"] != old_url
    gateway = outcome["gateway_url"]
    assert httpx.get(f"{gateway}/metadata").json()["version"] == second
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 4.5
    assert [e["version"] for e in toy.endpoints().values()] == [second]

    refused = toy.deploy("--version", first)
    assert refused.code == 1
    message = refused.json()["error"]["message"]
    assert f"{first} is older than {second}, which is in force" in message
    assert toy.events()[0].kind == "deploy_refused" and toy.pointer() == second
    forced = toy.deployed("--version", first, "--force")
    assert forced["previous_version"] == second
    assert httpx.get(f"{gateway}/metadata").json()["version"] == first
    assert toy.events("deploy")[0].details["forced"] is True


def test_untested_version_is_refused_unless_tests_are_skipped(toy: Toy) -> None:
    version = toy.version(test=False)
    refused = toy.deploy()
    assert refused.code == 1
    assert "tests have not run" in refused.json()["error"]["message"]
    assert "--skip-tests" in refused.json()["error"]["message"]
    [event] = toy.events("deploy_refused")
    assert event.version == version and event.environment == "staging"
    assert toy.pointer() is None
    assert host_url(toy.root) is None  # a refusal starts nothing

    outcome = toy.deployed("--skip-tests")
    assert outcome["version"] == version
    assert toy.events("deploy")[0].details["skip_tests"] is True
    assert toy.pointer() == version

    untested = toy.version(bias=1.5, test=False)
    refused = toy.deploy()
    assert refused.code == 1 and f"{untested}'s tests have not run" in refused.stdout
    assert toy.events()[0].kind == "deploy_refused"
    assert toy.events()[0].details["reasons"] == [
        f"{untested}'s tests have not run (`modelci test`)"
    ]
    assert toy.pointer() == version
    gateway = outcome["gateway_url"]
    assert httpx.get(f"{gateway}/metadata").json()["version"] == version


def test_later_environment_takes_only_what_the_one_before_served(toy: Toy) -> None:
    version = toy.version()
    refused = toy.deploy("--version", version, env="production")
    assert refused.code == 1
    assert f"{version} has not been deployed to staging first" in refused.json()["error"]["message"]
    assert toy.events()[0].kind == "deploy_refused" and toy.pointer("production") is None

    outcome = toy.deployed("--version", version, "--force", env="production")
    assert outcome["endpoint"] == "toy" and outcome["gateway_url"].endswith("/endpoints/toy")
    [event] = toy.events("deploy")
    assert event.environment == "production" and event.details["forced"] is True
    assert any("deployed to staging first" in p for p in event.details["overridden"])
    assert httpx.get(f"{outcome['gateway_url']}/metadata").json()["environment"] == "production"


# --- failed deploys ----------------------------------------------------------------------------


def test_version_that_cannot_start_is_rolled_back(toy: Toy) -> None:
    good = toy.version()
    gateway = toy.deployed()["gateway_url"]
    broken = toy.version(bias=2.0, inference=CANNOT_LOAD, test=False)
    result = toy.deploy("--skip-tests")
    assert result.code == 1
    outcome = result.json()
    assert set(outcome) == OUTCOME_KEYS
    assert outcome["status"] == "rolled_back" and outcome["version"] == broken
    assert outcome["previous_version"] == good
    assert "this version cannot load its model" in outcome["reason"]
    kinds = [e.kind for e in toy.events()[:3]]
    assert kinds == ["rollback", "deploy_failed", "deploy"]
    assert toy.events("rollback")[0].to_version == good
    assert toy.pointer() == good
    assert httpx.get(f"{gateway}/metadata").json()["version"] == good
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5

    # staging never served the broken version, so production does not take it either
    refused = toy.deploy("--version", broken, "--skip-tests", env="production")
    assert refused.code == 1
    assert "has not been deployed to staging first" in refused.json()["error"]["message"]


def test_first_deploy_that_fails_leaves_no_pointer(toy: Toy) -> None:
    toy.version(inference=CANNOT_LOAD, test=False)
    result = toy.deploy("--skip-tests")
    assert result.code == 1
    outcome = result.json()
    assert outcome["status"] == "failed" and outcome["previous_version"] is None
    assert outcome["url"] is None and outcome["gateway_url"] is None
    assert toy.pointer() is None
    assert [e.kind for e in toy.events()[:2]] == ["rollback", "deploy_failed"]
    unknown = httpx.post(
        f"{host_url(toy.root)}/endpoints/toy-staging/invocations", content=ROW, headers=JSON
    )
    assert unknown.status_code == 404
    assert "cannot load its model" in unknown.json()["message"]


def test_failed_smoke_request_rolls_back(toy: Toy) -> None:
    good = toy.version()
    gateway = toy.deployed()["gateway_url"]
    toy.version(bias=1.5, inference=FAILS_ON_SMOKE_ROW, test=False)
    result = toy.deploy("--skip-tests")
    assert result.code == 1
    outcome = result.json()
    assert outcome["status"] == "rolled_back" and outcome["previous_version"] == good
    assert "smoke request got 500" in outcome["reason"]
    assert toy.pointer() == good
    wait_until(
        lambda: httpx.get(f"{gateway}/metadata").json()["version"] == good,
        "the endpoint serves the previous version again",
        deadline_s=DEADLINE_S,
    )
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5


# --- racing deploys ----------------------------------------------------------------------------

# model_fn takes 2 s: a version stays starting long enough for later deploys to move the pointer
STARTS_IN_2_S = (
    INFERENCE.replace("def model_fn(model_dir):", "def _model_fn(model_dir):")
    + """
import time

def model_fn(model_dir):
    time.sleep(2)
    return _model_fn(model_dir)
"""
)
RACERS = 4
RACE_DEADLINE_S = 60.0  # far below rollout.HEALTH_TIMEOUT_S, which a superseded deploy waited


def test_racing_deploys_superseded_by_a_later_one_end_at_once(toy: Toy) -> None:
    toy.deployed("--version", toy.version(), "--skip-tests")  # the host runs before the race
    biases = [1.0 + index for index in range(RACERS)]
    versions = [toy.version(bias=b, inference=STARTS_IN_2_S, test=False) for b in biases]
    racers = []
    for index, version in enumerate(versions):
        command = [sys.executable, "-m", "modelci", "-C", str(toy.root), "deploy", "toy"]
        command += ["--env", "staging", "--version", version, "--skip-tests", "--force", "--json"]
        racers.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(0.3 * (index < RACERS - 1))  # in order, mostly: later ones win the pointer
    results: dict[str, tuple[int, dict[str, Any]]] = {}
    try:
        for version, racer in zip(versions, racers, strict=True):
            out, err = racer.communicate(timeout=RACE_DEADLINE_S)
            assert out.strip(), err.decode(errors="replace")
            results[version] = racer.returncode, json.loads(out)
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()

    final = toy.pointer()
    assert final in versions
    statuses = {
        v: document.get("status") or document["error"]["type"]
        for v, (_, document) in results.items()
    }
    assert set(statuses.values()) <= {"deployed", "superseded"}, results  # never a conflict
    assert statuses[final] == "deployed" and results[final][0] == 0, results[final]
    superseded = [v for v, status in statuses.items() if status == "superseded"]
    assert superseded, statuses
    for version in superseded:
        code, outcome = results[version]
        assert code == 1 and set(outcome) == OUTCOME_KEYS
        by = outcome["reason"].partition(" was superseded by ")[2].partition(":")[0]
        assert by in versions and by != version, outcome["reason"]
    new = [e for e in toy.events() if e.to_version in versions]
    assert not [e for e in new if e.kind in ("deploy_failed", "rollback")], new
    # one that moved the pointer and was replaced while it waited records it; one that lost the
    # compare-and-set never moved the pointer, and records nothing
    moved = {e.to_version for e in new if e.kind == "deploy"}
    assert sorted(e.to_version for e in new if e.kind == "deploy_superseded") == sorted(
        v for v in superseded if v in moved
    )
    # staging never served a superseded version healthily: production does not take it
    refused = toy.deploy("--version", superseded[0], "--skip-tests", env="production")
    assert refused.code == 1
    assert "has not been deployed to staging first" in refused.json()["error"]["message"]
    [endpoint] = toy.endpoints().values()
    assert endpoint["version"] == final and endpoint["healthy"]
    gateway = f"{host_url(toy.root)}/endpoints/toy-staging"
    answer = httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON, timeout=30)
    assert prediction(answer) == 3 + biases[versions.index(final)]


# --- the host ----------------------------------------------------------------------------------


def test_crashed_version_server_is_restarted(toy: Toy) -> None:
    toy.version()
    gateway = toy.deployed()["gateway_url"]
    [before] = toy.endpoints().values()
    os.kill(before["pid"], signal.SIGKILL)
    statuses: set[int] = set()

    def restarted() -> bool:
        statuses.add(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON).status_code)
        endpoint = toy.endpoints()["toy-staging"]
        return bool(endpoint["healthy"] and endpoint["restarts"] == 1)

    wait_until(restarted, "the crashed server is restarted and healthy", deadline_s=DEADLINE_S)
    assert statuses <= {200, 503}, statuses
    [after] = toy.endpoints().values()
    assert after["pid"] != before["pid"] and after["version"] == before["version"]
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5


def test_serve_stop_and_one_host_per_repository(toy: Toy) -> None:
    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json() == {"stopped": False, "running": False}
    # a state file left by a host killed outright, whose pid now belongs to another process
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state = toy.root / ".modelci/serve/serve.json"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"pid": bystander.pid, "url": "http://127.0.0.1:9"}))
        stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
        assert stopped.code == 0 and stopped.json() == {"stopped": False, "running": False}
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    toy.repo.write("models/toy/model.toml", SPEC.format(bias=0.5))
    toy.repo.write("models/toy/inference.py", INFERENCE)
    toy.repo.commit()
    url = toy.hosts.start(toy.root)
    assert toy.endpoints() == {}
    pid = json.loads((toy.root / ".modelci/serve/serve.json").read_text())["pid"]

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelci",
            "-C",
            str(toy.root),
            "serve",
            "--port",
            str(free_port()),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2, second.stdout + second.stderr
    message = json.loads(second.stdout)["error"]["message"]
    assert "already runs for this repository" in message
    assert url in message and f"pid {pid}" in message

    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json() == {"stopped": True, "pid": pid, "url": url}
    assert host_url(toy.root) is None


# --- swaps under load --------------------------------------------------------------------------


def test_swaps_under_load_drop_no_request(toy: Toy) -> None:
    first = toy.version()
    second = toy.version(bias=1.5)
    gateway = toy.deployed("--version", first)["gateway_url"]
    swaps = [(second,), (first, "--force"), (second,)]
    windows = []
    with Load(f"{gateway}/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running", deadline_s=DEADLINE_S)
        for version, *options in swaps:
            began = time.monotonic()
            outcome = toy.deployed("--version", version, *options)
            assert outcome["version"] == version
            windows.append((began, time.monotonic()))
        done = load.count()
        wait_until(
            lambda: load.count() >= done + 20,
            "more answers after the last swap",
            deadline_s=DEADLINE_S,
        )
        assert load.count() < load.cap, "the cap was reached before the swaps were done"
    assert load.failures == [], load.failures[:5]
    values = [value for _, value in load.answers]
    assert set(values) == {3.5, 4.5}
    for began, ended in windows:
        assert sum(began <= at <= ended for at, _ in load.answers) >= 5
    last = windows[-1][1]
    assert {value for at, value in load.answers if at > last + 1} <= {4.5}
    assert [e["version"] for e in toy.endpoints().values()] == [second]
