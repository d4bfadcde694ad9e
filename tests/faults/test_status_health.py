"""`modelci status` shows each endpoint's URL and health from the endpoint host's state and a
quick probe through it: healthy while its version server answers, unhealthy while that
server is frozen (SIGSTOP: alive, but answering nothing), and nothing as serving once the
host is stopped."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx

from tests.support.hosts import JSON, ROW, Toy, host_url, prediction
from tests.support.waiting import wait_until

ENDPOINT_KEYS = {"name", "url", "health", "version"}


def staging(toy: Toy) -> dict[str, Any]:
    result = toy.modelci("-C", toy.root, "status", "--json")
    assert result.code == 0, result.stdout + result.stderr
    [model] = result.json()["models"]
    entry: dict[str, Any] = model["environments"]["staging"]
    return entry


def test_status_shows_each_endpoints_url_and_health(toy: Toy) -> None:
    version = toy.version()
    toy.deployed()
    gateway = f"{host_url(toy.root)}/endpoints/toy-staging"
    entry = staging(toy)
    assert set(entry["endpoint"]) == ENDPOINT_KEYS
    assert entry["endpoint"] == {
        "name": "toy-staging",
        "url": f"{gateway}/invocations",
        "health": "healthy",
        "version": version,
    }
    assert entry["serving"]["status"] == "SERVING" and entry["serving"]["healthy"] is True
    # the URL status names is the one that answers
    assert prediction(httpx.post(entry["endpoint"]["url"], content=ROW, headers=JSON)) == 3.5
    human = toy.modelci("-C", toy.root, "status")
    assert human.code == 0, human.stderr
    assert "local: healthy" in human.stdout and f"{gateway}/invocations" in human.stdout

    [served] = toy.endpoints().values()
    os.kill(served["pid"], signal.SIGSTOP)  # alive to the host, answering nothing
    try:
        frozen = staging(toy)
        assert frozen["endpoint"]["health"] == "unhealthy", frozen
        assert frozen["endpoint"]["url"] == f"{gateway}/invocations"
        assert frozen["serving"]["status"] == "UNHEALTHY"
        assert "local: unhealthy" in toy.modelci("-C", toy.root, "status").stdout
    finally:
        os.kill(served["pid"], signal.SIGCONT)
    wait_until(
        lambda: staging(toy)["endpoint"]["health"] == "healthy",
        "the thawed endpoint is healthy again",
    )

    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json()["stopped"] is True, stopped.stdout
    after = staging(toy)
    assert after["version"] == version  # the registry still wants it
    assert after["endpoint"] == {
        "name": "toy-staging",
        "url": None,
        "health": "not serving",
        "version": None,
    }
    assert "serving" not in after
    human = toy.modelci("-C", toy.root, "status")
    assert "local: not serving" in human.stdout and "healthy" not in human.stdout
    assert gateway not in human.stdout
