"""Shadow traffic with real processes: `deploy --shadow` starts the candidate's server beside
the live one in the endpoint host, real requests on 127.0.0.1 go through the host, the pairs
are written through the store and announced in the registry, and `modelci shadow` reads them
back. The live answers never change; the reported disagreement is the true one; the
`shadow_disagreement` gate blocks the promotion of a candidate that disagrees. The `host`
backend's hosts, following a shared registry with no checkout, mirror as well."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelci.errors import ConfigError
from modelci.registry import open_registry
from modelci.registry.base import Event, VersionRecord
from tests.support.cli import CliResult
from tests.support.hosts import JSON, SPEC, Run, Toy, host_url
from tests.support.repos import GitRepo
from tests.support.team import DEADLINE_S, TeamHost, start_host
from tests.support.toy import INFERENCE, write_toy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

GATED = SPEC + '\n[gates]\nshadow_disagreement = "<= 0.01"\n'
SAME_ANSWERS = INFERENCE + "\n# the same answers from another commit\n"
# answers one more where a row's first value is 1: a third of the rows [[i % 3, i % 5]]
OFF_WHERE_FIRST_IS_ONE = (
    INFERENCE
    + """
_predict = predict_fn

def predict_fn(data, model):
    return [p + (1.0 if row[0] == 1 else 0.0) for p, row in zip(_predict(data, model), data)]
"""
)


def candidate(toy: Toy, inference: str) -> str:
    """A gated version with `inference`, trained, tested and served in staging."""
    toy.repo.write("models/toy/model.toml", GATED.format(bias=0.5))
    toy.repo.write("models/toy/inference.py", inference)
    sha = toy.repo.commit("candidate")
    for step in (("train", "toy"), ("test", "toy", "--skip", "reproducibility")):
        done = toy.modelci("-C", toy.root, *step)
        assert done.code == 0, done.stdout + done.stderr
    toy.deployed()
    return f"toy-{sha[:12]}"


def live_in_production(toy: Toy) -> str:
    version = toy.version()
    toy.deployed()
    promoted = toy.modelci(
        "-C", toy.root, "promote", "toy", "--from", "staging", "--to", "production", "--json"
    )
    assert promoted.code == 0, promoted.stdout + promoted.stderr
    return version


def send(url: str, count: int) -> list[float]:
    """`count` requests, one at a time, rows [[i % 3, i % 5]]; the predictions answered."""
    answers = []
    with httpx.Client(headers=JSON, timeout=30) as client:
        for i in range(count):
            answer = client.post(url, content=f"[[{i % 3}, {i % 5}]]".encode())
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["predictions"][0])
    return answers


def truth(count: int) -> list[float]:
    """The live toy's (bias 0.5) answers to `send`'s rows."""
    return [i % 3 + i % 5 + 0.5 for i in range(count)]


def reported(toy: Toy, pairs: int, *options: str) -> tuple[CliResult, dict[str, Any]]:
    """`modelci shadow toy --json` once it reads `pairs` pairs (the host writes them in
    batches off the request path)."""
    found: dict[str, Any] = {}

    def complete() -> bool:
        result = toy.modelci("-C", toy.root, "shadow", "toy", "--json", *options)
        found["result"] = result
        return bool(result.stdout) and result.json().get("pairs") == pairs

    wait_until(
        complete, f"{pairs} shadow pairs are recorded", details=lambda: found["result"].stdout
    )
    result: CliResult = found["result"]
    return result, result.json()


def test_shadow_of_an_identical_model_reports_zero_disagreement(toy: Toy) -> None:
    live = live_in_production(toy)
    same = candidate(toy, SAME_ANSWERS)
    started = toy.deploy("--shadow", env="production")
    assert started.code == 0, started.stdout + started.stderr
    outcome = started.json()
    assert outcome["status"] == "shadowing" and outcome["percent"] == 100
    assert (outcome["version"], outcome["live_version"]) == (same, live)
    [served] = [e for name, e in toy.endpoints().items() if name == "toy"]
    assert served["version"] == live and served["shadow"]["version"] == same
    assert served["shadow"]["healthy"] is True and served["shadow"]["url"] != served["url"]
    status = toy.modelci("-C", toy.root, "status", "--json").json()
    production = status["models"][0]["environments"]["production"]
    assert production["shadow"] == {"version": same, "percent": 100, "event": outcome["event"]}

    assert send(f"{host_url(toy.root)}/endpoints/toy/invocations", 20) == truth(20)
    result, report = reported(toy, 20, "--env", "production")
    assert result.code == 0, result.stdout
    assert report["session"] == outcome["event"] and report["running"] is True
    assert report["version"] == same and report["live_versions"] == [live]
    assert report["kind"] == "numbers" and report["predictions"] == 20
    assert report["disagreement"] == 0 and report["differing"] == 0
    assert report["relative_error"]["max"] == 0 and report["candidate_errors"] == 0
    assert report["dropped"] == 0
    assert report["latency_ms"]["live"]["p99"] > 0 and report["latency_ms"]["candidate"]["p50"] > 0
    assert report["gate"]["passed"] is True
    # both outputs of each request are recorded under one event id, and announced
    with open_registry("sqlite:///.modelci/registry.db", toy.root) as registry:
        batches = registry.events("toy", kind="shadow_batch")
    assert sum(b.details["count"] for b in batches) == 20
    assert {b.details["shadow"] for b in batches} == {outcome["event"]}

    promoted = toy.modelci(
        "-C", toy.root, "promote", "toy", "--from", "staging", "--to", "production", "--json"
    )
    assert promoted.code == 0, promoted.stdout + promoted.stderr
    stopped = toy.deploy("--shadow", "--stop", env="production")
    assert stopped.code == 0 and stopped.json()["status"] == "stopped", stopped.stdout
    assert "shadow" not in toy.endpoints()["toy"]
    again = toy.deploy("--shadow", "--stop", env="production")
    assert again.code == 0 and again.json()["status"] == "none"
    human = toy.modelci("-C", toy.root, "shadow", "toy", "--env", "production")
    assert human.code == 0 and "(ended)" in human.stdout and "passes" in human.stdout


def test_shadow_of_a_changed_model_reports_the_true_rate(toy: Toy) -> None:
    live = live_in_production(toy)
    changed = candidate(toy, OFF_WHERE_FIRST_IS_ONE)
    started = toy.deploy("--shadow", "--percent", "50", env="production")
    assert started.code == 0, started.stdout + started.stderr
    assert started.json()["percent"] == 50

    # the live answers stay the live version's
    assert send(f"{host_url(toy.root)}/endpoints/toy/invocations", 30) == truth(30)
    # every second request is mirrored: i = 1, 3, ..., 29, of which i % 3 == 1 for 5
    result, report = reported(toy, 15, "--env", "production")
    assert report["version"] == changed and report["live_versions"] == [live]
    assert report["predictions"] == 15 and report["differing"] == 5
    assert report["disagreement"] == pytest.approx(1 / 3)
    assert report["relative_error"]["max"] == pytest.approx(1 / 2.5)  # row [1, 0]: 1.5 -> 2.5
    assert report["relative_error"]["p50"] == 0
    assert result.code == 1 and report["gate"]["passed"] is False  # shadow_disagreement <= 0.01

    refused = toy.modelci(
        "-C", toy.root, "promote", "toy", "--from", "staging", "--to", "production", "--json"
    )
    assert refused.code == 1
    message = refused.json()["error"]["message"]
    assert "shadow_disagreement" in message and changed in message
    assert toy.pointer("production") == live
    [refusal] = toy.events("deploy_refused")
    assert any("shadow_disagreement" in reason for reason in refusal.details["reasons"])


def test_shadow_needs_a_live_version_and_a_known_percent(toy: Toy) -> None:
    toy.version()
    for options, env, expected in (
        (("--shadow",), "production", "serves no version"),
        (("--shadow", "--percent", "0"), "staging", "--percent"),
        (("--percent", "5"), "staging", "go with --shadow"),
    ):
        refused = toy.deploy(*options, env=env)
        assert refused.code == 2, refused.stdout
        assert expected in refused.json()["error"]["message"]


def test_a_candidate_that_cannot_start_ends_its_shadow(toy: Toy) -> None:
    live = toy.version()
    toy.deployed()
    broken = toy.version(
        inference="def model_fn(model_dir):\n    raise RuntimeError('no model')\n", test=False
    )
    failed = toy.deploy("--shadow", "--version", broken)
    assert failed.code == 1 and failed.json()["status"] == "failed"
    assert "no model" in failed.json()["reason"]
    with open_registry("sqlite:///.modelci/registry.db", toy.root) as registry:
        assert registry.shadows("toy") == []
        assert registry.events("toy")[0].kind == "shadow_end"
    gateway = f"{host_url(toy.root)}/endpoints/toy-staging/invocations"
    assert send(gateway, 3) == truth(3) and toy.pointer() == live


def test_the_registry_keeps_one_shadow_per_environment(tmp_path: Path) -> None:
    with open_registry("sqlite:///registry.db", tmp_path) as registry:
        for name in ("toy-000000000001", "toy-000000000002"):
            registry.add_version(VersionRecord(version=name, model="toy", commit="0" * 40))
        first = registry.set_shadow(
            "toy", "staging", "toy-000000000001", 10, event=Event(kind="shadow", model="toy")
        )
        second = registry.set_shadow(
            "toy", "staging", "toy-000000000002", 50, event=Event(kind="shadow", model="toy")
        )
        [kept] = registry.shadows()
        assert (kept.version, kept.percent, kept.event) == ("toy-000000000002", 50, second.event)
        assert second.event > first.event
        with pytest.raises(ConfigError, match="no version toy-9"):
            registry.set_shadow("toy", "staging", "toy-9", 5, event=Event("shadow", "toy"))
        ended = registry.clear_shadow("toy", "staging", event=Event(kind="shadow_end", model="toy"))
        assert ended is not None and ended.event == second.event
        assert registry.shadows() == []
        assert registry.clear_shadow("toy", "staging", event=Event("shadow_end", "toy")) is None
        kinds = [(e.kind, e.version) for e in registry.events("toy")]
        assert kinds == [
            ("shadow_end", "toy-000000000002"),
            ("shadow", "toy-000000000002"),
            ("shadow", "toy-000000000001"),
        ]


# --- hosts following a shared registry (the `host` backend) ----------------------------------


@pytest.fixture
def team_host(
    tmp_path: Path,
    git_repo: Callable[..., GitRepo],
    shared_envs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[GitRepo, TeamHost]]:
    registry, store = f"sqlite:///{tmp_path / 'shared' / 'registry.db'}", str(tmp_path / "store")
    (tmp_path / "shared").mkdir()
    repo = git_repo()
    write_toy(repo, "", inference=None)
    for folder in (repo.root, tmp_path / "host"):
        (folder / ".modelci").mkdir(parents=True)
        (folder / ".modelci" / "envs").symlink_to(shared_envs, target_is_directory=True)
    monkeypatch.setenv("MODELCI_REGISTRY_URL", registry)
    monkeypatch.setenv("MODELCI_STORE_URL", store)
    monkeypatch.setenv("MODELCI_DEPLOY_BACKEND", "host")
    monkeypatch.setenv("MODELCI_DEPLOY_TIMEOUT", str(int(DEADLINE_S)))
    host = start_host(tmp_path / "host", "a", registry, store)
    yield repo, host
    host.stop()


def test_a_host_following_the_registry_mirrors_and_reports(
    team_host: tuple[GitRepo, TeamHost], modelci: Run
) -> None:
    repo, host = team_host

    def version(inference: str) -> str:
        repo.write("models/toy/model.toml", SPEC.format(bias=0.5))
        repo.write("models/toy/inference.py", inference)
        sha = repo.commit("toy")
        for step in (("train", "toy"), ("test", "toy", "--skip", "reproducibility")):
            done = modelci("-C", repo.root, *step)
            assert done.code == 0, done.stdout + done.stderr
        return f"toy-{sha[:12]}"

    live = version(INFERENCE)
    deployed = modelci("-C", repo.root, "deploy", "toy", "--env", "staging", "--json")
    assert deployed.code == 0, deployed.stdout + deployed.stderr
    changed = version(OFF_WHERE_FIRST_IS_ONE)
    started = modelci("-C", repo.root, "deploy", "toy", "--env", "staging", "--shadow", "--json")
    assert started.code == 0, started.stdout + started.stderr
    outcome = started.json()
    assert outcome["version"] == changed and outcome["live_version"] == live
    assert outcome["url"] == f"{host.url}/endpoints/toy-staging"  # the host's report

    assert send(f"{host.url}/endpoints/toy-staging/invocations", 9) == truth(9)
    found: dict[str, Any] = {}

    def recorded() -> bool:
        result = modelci("-C", repo.root, "shadow", "toy", "--env", "staging", "--json")
        found.update(result.json())
        return found.get("pairs") == 9

    wait_until(recorded, "the host's pairs are in the shared store", details=lambda: str(found))
    assert found["differing"] == 3 and found["disagreement"] == pytest.approx(1 / 3)
    assert found["live_versions"] == [live] and found["version"] == changed
    stopped = modelci("-C", repo.root, "deploy", "toy", "--env", "staging", "--shadow", "--stop")
    assert stopped.code == 0, stopped.stderr
    wait_until(
        lambda: (
            "shadow"
            not in httpx.get(f"{host.url}/-/endpoints", timeout=10).json()["endpoints"][
                "toy-staging"
            ]
        ),
        "the host stops its candidate",
    )
