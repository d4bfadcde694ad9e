"""Versions sharing a server process in the endpoint host (`[serve] isolation = "shared"`):
two models of one environment in one process, each answering with its own model and metadata;
a model asking for its own process getting one; an idle version unloaded and loaded again on
the next request; a shared process killed with SIGKILL restarted for all its versions; a
version that cannot load failing only its own endpoint."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx

from tests.support.hosts import (
    CANNOT_LOAD,
    INFERENCE,
    JSON,
    ROW,
    SPEC,
    TRAIN,
    Load,
    Toy,
    get_json,
    host_url,
    prediction,
)
from tests.support.waiting import wait_until

SHARED = """\
[serve]
isolation = "shared"
idle_unload = {idle}
"""
THREADS = 8


def _twin(toy: Toy, bias: float, inference: str = INFERENCE, serve: str = "") -> str:
    """A second toy model, `twin` (3 + bias), committed and trained; its version."""
    repo = toy.repo
    repo.write("models/twin/model.toml", SPEC.format(bias=bias) + serve)
    repo.write("models/twin/train.py", TRAIN)
    repo.write("models/twin/requirements.txt", "")
    repo.write("models/twin/inference.py", inference)
    sha = repo.commit(f"twin, bias {bias}")
    trained = toy.modelci("-C", toy.root, "train", "twin")
    assert trained.code == 0, trained.stdout + trained.stderr
    return f"twin-{sha[:12]}"


def _deploy_twin(toy: Toy) -> dict[str, Any]:
    result = toy.modelci(
        "-C", toy.root, "deploy", "twin", "--env", "staging", "--skip-tests", "--json"
    )
    outcome: dict[str, Any] = result.json()
    return outcome


def _both(toy: Toy, idle: float = 600, twin_serve: str = "") -> str:
    """toy (3.5) and twin (4.5) deployed to staging in a project that shares processes; the
    host's URL."""
    toy.repo.write("modelci.toml", SHARED.format(idle=idle))
    _twin(toy, bias=1.5, serve=twin_serve)
    toy.version()
    toy.deployed()
    assert _deploy_twin(toy)["status"] == "deployed"
    url = host_url(toy.root)
    assert url is not None
    return url


def _predict(url: str, endpoint: str) -> float:
    answer = httpx.post(f"{url}/endpoints/{endpoint}/invocations", content=ROW, headers=JSON)
    return prediction(answer)


def test_two_models_share_one_process_and_answer_each(toy: Toy) -> None:
    url = _both(toy)
    endpoints = toy.endpoints()
    mine, twin = endpoints["toy-staging"], endpoints["twin-staging"]
    assert mine["isolation"] == twin["isolation"] == "shared"
    assert mine["pid"] == twin["pid"]
    assert _predict(url, "toy-staging") == 3.5
    assert _predict(url, "twin-staging") == 4.5
    metadata = httpx.get(f"{url}/endpoints/twin-staging/metadata").json()
    assert (metadata["model"], metadata["version"]) == ("twin", twin["version"])
    assert metadata["endpoint"] == "twin-staging" and metadata["environment"] == "staging"
    assert httpx.get(f"{url}/endpoints/toy-staging/metadata").json()["model"] == "toy"
    assert "modelci_requests" in httpx.get(f"{url}/endpoints/toy-staging/metrics").text
    # its own routes in the shared process, as the deploy reports them
    assert httpx.get(f"{twin['url']}/metadata").json()["model"] == "twin"

    [process] = get_json(f"{url}/-/health")["processes"]
    assert process["pid"] == mine["pid"] and process["isolation"] == "shared"
    assert process["endpoints"] == {"toy-staging": mine["version"], "twin-staging": twin["version"]}
    assert process["loaded"] == ["toy-staging", "twin-staging"]
    assert process["pss_bytes"] > 0
    status = toy.modelci("-C", toy.root, "serve", "--status", "--json")
    assert status.code == 0
    assert [p["pid"] for p in status.json()["processes"]] == [mine["pid"]]
    shown = toy.modelci("-C", toy.root, "serve", "--status")
    assert f"process {mine['pid']} (shared): 2 endpoint(s), 2 loaded" in shown.stdout

    # a new version of toy swaps in the same process under load, no request lost
    with Load(f"{url}/endpoints/toy-staging/invocations", threads=4, cap=3000) as load:
        wait_until(lambda: load.count() >= 50, "the load is running", deadline_s=30)
        toy.version(bias=2.5)
        toy.deployed()
        wait_until(lambda: any(v == 5.5 for _, v in load.answers), "the new version answers")
    assert not load.failures, load.failures[:3]
    after = toy.endpoints()
    assert after["toy-staging"]["pid"] == mine["pid"] == after["twin-staging"]["pid"]
    [process] = get_json(f"{url}/-/endpoints")["processes"]
    assert set(process["endpoints"]) == {"toy-staging", "twin-staging"}


def test_a_model_asking_for_isolation_gets_its_own_process(toy: Toy) -> None:
    url = _both(toy, twin_serve='isolation = "process"\n')
    endpoints = toy.endpoints()
    assert endpoints["toy-staging"]["isolation"] == "shared"
    assert endpoints["twin-staging"]["isolation"] == "process"
    assert endpoints["toy-staging"]["pid"] != endpoints["twin-staging"]["pid"]
    assert _predict(url, "twin-staging") == 4.5
    processes = get_json(f"{url}/-/endpoints")["processes"]
    assert sorted(p["isolation"] for p in processes) == ["process", "shared"]


def test_an_idle_version_is_unloaded_and_answers_again(toy: Toy) -> None:
    url = _both(toy, idle=1)

    def loaded() -> dict[str, bool | None]:
        return {name: e.get("loaded") for name, e in toy.endpoints().items()}

    wait_until(lambda: loaded() == {"toy-staging": False, "twin-staging": False}, "unloaded")
    [process] = get_json(f"{url}/-/endpoints")["processes"]
    assert process["loaded"] == []
    assert _predict(url, "twin-staging") == 4.5  # loaded again on demand
    assert loaded()["twin-staging"] is True

    # twin's handler breaks while it is unloaded: its next load fails its own endpoint only
    wait_until(lambda: loaded()["twin-staging"] is False, "twin is unloaded again")
    version = toy.endpoints()["twin-staging"]["version"]
    handler = toy.root / f".modelci/serve/code/{version}/models/twin/inference.py"
    handler.write_text(CANNOT_LOAD)
    failed = httpx.post(f"{url}/endpoints/twin-staging/invocations", content=ROW, headers=JSON)
    assert failed.status_code == 500
    assert "this version cannot load its model" in failed.text
    assert _predict(url, "toy-staging") == 3.5
    endpoints = toy.endpoints()
    assert endpoints["toy-staging"]["pid"] == endpoints["twin-staging"]["pid"]
    handler.write_text(INFERENCE)
    assert _predict(url, "twin-staging") == 4.5


def test_a_killed_shared_process_is_restarted_for_all_its_versions(toy: Toy) -> None:
    url = _both(toy)
    before = toy.endpoints()
    pid = before["toy-staging"]["pid"]
    with Load(f"{url}/endpoints/toy-staging/invocations", threads=THREADS, cap=4000) as load:
        wait_until(lambda: load.count() >= 100, "the load is running", deadline_s=30)
        os.kill(pid, signal.SIGKILL)
        killed_at = load.count()

        def restarted() -> bool:
            return all(e["healthy"] and e["restarts"] == 1 for e in toy.endpoints().values())

        wait_until(restarted, "both versions are served again", deadline_s=60)
        wait_until(lambda: load.count() >= killed_at + 200, "answers after the restart")
    assert len(load.failures) <= THREADS, load.failures[:3]  # at most what was in flight
    after = toy.endpoints()
    assert after["toy-staging"]["pid"] == after["twin-staging"]["pid"] != pid
    assert _predict(url, "twin-staging") == 4.5  # registered again, loaded on demand


def test_a_version_that_cannot_load_fails_alone(toy: Toy) -> None:
    toy.repo.write("modelci.toml", SHARED.format(idle=600))
    toy.version()
    toy.deployed()
    url = host_url(toy.root)
    assert url is not None
    [served] = toy.endpoints().values()
    _twin(toy, bias=1.5, inference=CANNOT_LOAD)
    outcome = _deploy_twin(toy)
    assert outcome["status"] == "failed"
    assert "this version cannot load its model" in outcome["reason"]
    assert _predict(url, "toy-staging") == 3.5
    assert toy.endpoints()["toy-staging"]["pid"] == served["pid"]
    [process] = get_json(f"{url}/-/endpoints")["processes"]
    assert list(process["endpoints"]) == ["toy-staging"]
