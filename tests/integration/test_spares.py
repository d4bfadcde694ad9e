"""Spare version servers (`POST /-/prepare`, modelci.serve.prepared): `run` has the endpoint
host start a server of the version it trains, which loads its libraries meanwhile and is given
the stored model when the deploy swaps to it; a version that fails has its spare stopped. A bad
prepare request is a 400 (or 409) naming what is wrong, and the host serves on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hosts import SPEC, Toy, host_url
from tests.support.toy import INFERENCE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

ROW = b"[[1, 2]]"  # the toy answers 3 + bias


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _prepare(toy: Toy, body: Any) -> httpx.Response:
    url = host_url(toy.root)
    assert url is not None
    if isinstance(body, bytes):
        return httpx.post(f"{url}/-/prepare", content=body, timeout=30)
    return httpx.post(f"{url}/-/prepare", json=body, timeout=30)


def _spares(toy: Toy) -> dict[str, Any]:
    url = host_url(toy.root)
    assert url is not None
    spares: dict[str, Any] = httpx.get(f"{url}/-/endpoints", timeout=10).json()["spares"]
    return spares


def test_a_spare_is_given_its_model_at_the_deploy_and_bad_requests_are_refused(
    toy: Toy,
) -> None:
    first = toy.version(bias=0.5)
    toy.deployed("--version", first)  # starts the host
    staging = {"endpoint": "toy-staging", "model": "toy", "environment": "staging"}

    refused = [
        (b"{not json", 400, "not JSON"),
        ([1, 2], 400, "JSON object"),
        ({**staging, "model": 3, "version": first, "commit": "x"}, 400, "'model'"),
        ({**staging, "version": first}, 400, "'commit'"),
        ({**staging, "endpoint": "price-staging", "version": first, "commit": "x"}, 400, "not"),
        ({**staging, "environment": "nowhere", "version": first, "commit": "x"}, 400, "nowhere"),
        ({**staging, "version": "toy-0000", "commit": "0" * 40}, 400, "no commit"),
        ({**staging, "version": "../../escape", "commit": toy.repo.sha()}, 400, "'version'"),
    ]
    for body, status, named in refused:
        answer = _prepare(toy, body)
        assert answer.status_code == status and named in answer.json()["message"], (
            body,
            answer.text,
        )
    assert _spares(toy) == {}
    # the version it serves needs no spare
    head = toy.repo.sha()
    assert _prepare(toy, {**staging, "version": first, "commit": head}).status_code == 200

    second = toy.version(bias=1.5)
    head = toy.repo.sha()
    answer = _prepare(toy, {**staging, "version": second, "commit": head})
    assert answer.status_code == 202, answer.text
    [spare] = _spares(toy).values()
    assert spare["version"] == second and spare["alive"] is True
    # nothing routes to it yet: the endpoint answers as the first version
    gateway = f"{host_url(toy.root)}/endpoints/toy-staging/invocations"
    served = httpx.post(gateway, content=ROW, headers={"content-type": "application/json"})
    assert served.json() == {"predictions": [3.5]}, served.text

    first_pid = toy.endpoints()["toy-staging"]["pid"]
    toy.deployed("--version", second)
    endpoint = toy.endpoints()["toy-staging"]
    assert endpoint["version"] == second and endpoint["pid"] == spare["pid"], endpoint
    assert endpoint["warm_start"] is True and _spares(toy) == {}
    served = httpx.post(gateway, content=ROW, headers={"content-type": "application/json"})
    assert served.json() == {"predictions": [4.5]}, served.text
    # the replaced server is drained and stopped after the swap (modelci.serve.retiring)
    wait_until(lambda: not _alive(first_pid), "the first version's server ends")

    # a spare withdrawn (its version failed) is stopped
    third = toy.version(bias=2.5)
    head = toy.repo.sha()
    assert _prepare(toy, {**staging, "version": third, "commit": head}).status_code == 202
    [spare] = _spares(toy).values()
    answer = _prepare(toy, {**staging, "version": None})
    assert answer.status_code == 200, answer.text
    assert _spares(toy) == {}
    wait_until(lambda: not _alive(spare["pid"]), "the withdrawn spare's process ends")
    assert toy.endpoints()["toy-staging"]["version"] == second


def test_run_deploys_through_a_spare_and_a_failed_version_leaves_none(toy: Toy) -> None:
    toy.repo.write("models/toy/model.toml", SPEC.format(bias=0.5))
    toy.repo.write("models/toy/inference.py", INFERENCE)
    toy.repo.commit("toy")
    first = toy.modelci("-C", toy.root, "run", "--json")
    assert first.code == 0, first.stdout + first.stderr
    assert toy.endpoints()["toy-staging"]["warm_start"] is False  # no host ran: a cold start

    toy.repo.write("models/toy/model.toml", SPEC.format(bias=1.5))
    sha = toy.repo.commit("toy, bias 1.5")
    second = toy.modelci("-C", toy.root, "run", "--json")
    assert second.code == 0, second.stdout + second.stderr
    endpoint = toy.endpoints()["toy-staging"]
    assert endpoint["version"] == f"toy-{sha[:12]}" and endpoint["warm_start"] is True, endpoint
    assert _spares(toy) == {}

    # a version whose gate fails is not deployed, and its spare is stopped
    toy.repo.write("models/toy/model.toml", SPEC.format(bias=2.5) + '\n[gates]\nscore = ">= 0.9"\n')
    toy.repo.commit("toy, bias 2.5, a gate it fails")
    third = toy.modelci("-C", toy.root, "run", "--json")
    assert third.code == 1, third.stdout + third.stderr
    [row] = third.json()["models"]
    assert row["steps"]["test"] == "failed", row
    assert _spares(toy) == {}
    assert toy.endpoints()["toy-staging"]["version"] == f"toy-{sha[:12]}"
