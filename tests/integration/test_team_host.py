"""A team's path: CI commands on a checkout move pointers in a shared registry (deploy backend
`host`) and wait for long-lived `modelci serve` hosts, started in folders that are no
checkout and given only the registry and store, to report through the registry that they
serve the version. Real processes, a real SQLite file (and PostgreSQL) registry, a real
folder store, real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelci.registry import open_registry
from modelci.registry.base import Event
from tests.support.cli import CliResult
from tests.support.hosts import (
    CANNOT_LOAD,
    FAILS_ON_SMOKE_ROW,
    JSON,
    ROW,
    get_json,
    prediction,
)
from tests.support.postgres import create_database
from tests.support.repos import GitRepo
from tests.support.rolling import FAILS_ONE_IN_THREE, Recorder, rollout_table
from tests.support.team import DEADLINE_S, TeamHost, start_host
from tests.support.toy import INFERENCE, SERVED_SPEC, write_toy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]
MODELCI = [sys.executable, "-m", "modelci", "-C"]
CANARY_DEPLOY = ("deploy", "toy", "--env", "staging", "--json", "--skip-tests")


class Team:
    """A shared registry and store, a checkout whose commands use them with the `host`
    backend, and the hosts a test started (stopped at its end)."""

    def __init__(self, tmp: Path, registry: str, envs: Path, repo: GitRepo, modelci: Run):
        self.tmp = tmp
        self.registry = registry
        self.store = str(tmp / "store")
        self.envs = envs
        self.repo = repo
        self.modelci = modelci
        self.hosts: list[TeamHost] = []

    def host(self, name: str, settings: str = "") -> TeamHost:
        folder = self.tmp / f"host-{name}"
        (folder / ".modelci").mkdir(parents=True)
        if settings:  # the host folder's own modelci.toml
            (folder / "modelci.toml").write_text(settings)
        (folder / ".modelci" / "envs").symlink_to(self.envs, target_is_directory=True)
        started = start_host(folder, name, self.registry, self.store)
        self.hosts.append(started)
        return started

    def version(self, bias: float, inference: str = INFERENCE, test: bool = True) -> str:
        self.repo.write("models/toy/model.toml", SERVED_SPEC.format(bias=bias))
        self.repo.write("models/toy/inference.py", inference)
        sha = self.repo.commit(f"toy, bias {bias}")
        trained = self.cli("train", "toy")
        assert trained.code == 0, trained.stdout + trained.stderr
        if test:
            tested = self.cli("test", "toy", "--skip", "reproducibility")
            assert tested.code == 0, tested.stdout + tested.stderr
        return f"toy-{sha[:12]}"

    def cli(self, *args: str) -> CliResult:
        return self.modelci("-C", self.repo.root, *args)

    def deploy(self, *options: str) -> dict[str, Any]:
        result = self.cli("deploy", "toy", "--env", "staging", "--json", *options)
        outcome: dict[str, Any] = result.json()
        assert result.code == (0 if outcome["status"] == "deployed" else 1), result.stderr
        return outcome

    def events(self, kind: str | None = None) -> list[Event]:
        with open_registry(self.registry, self.repo.root) as registry:
            return registry.events("toy", kind=kind)


@pytest.fixture
def team_registry(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite file apart from every checkout and host folder; or, parametrized with
    "postgres", a new database on the session's PostgreSQL server."""
    if getattr(request, "param", "sqlite") == "postgres":
        server: str = request.getfixturevalue("postgres_url")
        return create_database(server, f"team_{uuid.uuid4().hex[:12]}")
    return f"sqlite:///{tmp_path / 'shared' / 'registry.db'}"


@pytest.fixture
def team(
    tmp_path: Path,
    team_registry: str,
    shared_envs: Path,
    git_repo: Callable[..., GitRepo],
    modelci: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Team]:
    (tmp_path / "shared").mkdir()
    repo = git_repo()
    write_toy(repo, "", inference=None)  # each version writes its spec and handler
    (repo.root / ".modelci").mkdir()
    (repo.root / ".modelci" / "envs").symlink_to(shared_envs, target_is_directory=True)
    made = Team(tmp_path, team_registry, shared_envs, repo, modelci)
    monkeypatch.setenv("MODELCI_REGISTRY_URL", team_registry)
    monkeypatch.setenv("MODELCI_STORE_URL", made.store)
    monkeypatch.setenv("MODELCI_DEPLOY_BACKEND", "host")
    monkeypatch.setenv("MODELCI_DEPLOY_TIMEOUT", str(int(DEADLINE_S)))
    yield made
    for host in made.hosts:
        host.stop()
    for host in made.hosts:
        leftovers = [line for line in _children(host) if line]
        assert leftovers == [], leftovers


def _children(host: TeamHost) -> list[str]:
    """Live processes whose command line names the host's folder."""
    from tests.support.hosts import processes_of

    return [str(pid) for pid in processes_of(host.folder)]


def serves(host: TeamHost, endpoint: str, version: str) -> Callable[[], bool]:
    return lambda: (host.metadata(endpoint) or {}).get("version") == version


# --- the host backend --------------------------------------------------------------------------


def test_run_waits_for_a_host_with_no_checkout(team: Team) -> None:
    host = team.host("a")
    assert not (host.folder / ".git").exists()
    team.repo.write("models/toy/model.toml", SERVED_SPEC.format(bias=0.5))
    team.repo.write("models/toy/inference.py", INFERENCE)
    sha = team.repo.commit("toy")
    result = team.cli("run", "--json")
    assert result.code == 0, result.stdout + result.stderr
    version = f"toy-{sha[:12]}"
    [model] = result.json()["models"]
    assert model["steps"]["deploy"] == "done"
    # the deploy ended once the host reported (with no report it fails: see below)
    reports = team.events("host_report")
    assert [(e.version, e.details["status"], e.details["host"]) for e in reports] == [
        (version, "serving", "a")
    ]
    assert reports[0].details["url"] == host.url
    [deploy] = team.events("deploy")
    assert deploy.id is not None and reports[0].id is not None and reports[0].id > deploy.id
    assert reports[0].details["generation"] == 1
    assert (host.metadata("toy-staging") or {})["version"] == version
    answer = httpx.post(f"{host.url}/endpoints/toy-staging/invocations", content=ROW, headers=JSON)
    assert prediction(answer) == 3.5
    # nothing of the repository's own: no local host was started beside the checkout
    assert not (team.repo.root / ".modelci" / "serve" / "serve.json").exists()


def test_a_version_the_host_cannot_start_is_rolled_back_with_its_reason(team: Team) -> None:
    team.host("a")
    good = team.version(0.5)
    assert team.deploy()["status"] == "deployed"
    broken = team.version(2.0, inference=CANNOT_LOAD, test=False)
    outcome = team.deploy("--skip-tests")
    assert outcome["status"] == "rolled_back" and outcome["version"] == broken
    assert "host a could not serve" in outcome["reason"]
    assert "this version cannot load its model" in outcome["reason"]
    [failed] = team.events("deploy_failed")
    assert "this version cannot load its model" in failed.details["reason"]
    rollback = team.events("rollback")[0]
    assert rollback.to_version == good and rollback.details["automatic"] is True
    assert "host a could not serve" in rollback.details["reason"]
    status = team.cli("status", "--json")
    [model] = status.json()["models"]
    assert model["environments"]["staging"]["version"] == good
    # the host reported the previous version again for the pointer put back
    hosts = model["environments"]["staging"]["serving"]["hosts"]
    assert hosts["a"]["version"] == good and hosts["a"]["status"] == "serving"


def test_a_failed_smoke_request_on_the_host_rolls_back(team: Team) -> None:
    host = team.host("a")
    good = team.version(0.5)
    team.deploy()
    team.version(1.5, inference=FAILS_ON_SMOKE_ROW, test=False)
    outcome = team.deploy("--skip-tests")
    assert outcome["status"] == "rolled_back" and outcome["previous_version"] == good
    assert "smoke request got 500" in outcome["reason"]
    # the host never routed a client to it
    assert (host.metadata("toy-staging") or {})["version"] == good


def test_a_host_with_shared_processes_smoke_checks_each_version(team: Team) -> None:
    host = team.host("a", settings='[serve]\nisolation = "shared"\n')
    good = team.version(0.5)
    assert team.deploy()["status"] == "deployed"  # its smoke request went to its own routes
    team.version(1.5, inference=FAILS_ON_SMOKE_ROW, test=False)
    outcome = team.deploy("--skip-tests")
    assert outcome["status"] == "rolled_back" and "smoke request got 500" in outcome["reason"]
    [served] = httpx.get(f"{host.url}/-/endpoints", timeout=10).json()["endpoints"].values()
    assert served["version"] == good and served["isolation"] == "shared"
    answer = httpx.post(f"{host.url}/endpoints/toy-staging/invocations", content=ROW, headers=JSON)
    assert prediction(answer) == 3.5


def test_two_hosts_both_serve_and_status_names_them(team: Team) -> None:
    first, second = team.host("a"), team.host("b")
    version = team.version(0.5)
    assert team.deploy()["status"] == "deployed"
    for host in (first, second):
        wait_until(
            serves(host, "toy-staging", version), f"{host.name} serves", deadline_s=DEADLINE_S
        )
    wait_until(
        lambda: {e.details["host"] for e in team.events("host_report")} == {"a", "b"},
        "both hosts report",
        deadline_s=DEADLINE_S,
    )
    status = team.cli("status", "--json")
    [model] = status.json()["models"]
    serving = model["environments"]["staging"]["serving"]
    assert serving["healthy"] is True and set(serving["hosts"]) == {"a", "b"}
    for said in serving["hosts"].values():
        assert said["version"] == version and said["status"] == "serving"
        assert said["reported_at"]
    human = team.cli("status")
    assert "a: " + version in human.stdout and "b: " + version in human.stdout
    invoked = team.cli("invoke", "toy-staging", "--data", str(_row_file(team.tmp)))
    assert invoked.code == 0, invoked.stdout + invoked.stderr
    assert "3.5" in invoked.stdout


def test_no_host_means_the_deploy_fails_in_time_and_leaves_no_pointer(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCI_DEPLOY_TIMEOUT", "2")
    team.version(0.5)
    outcome = team.deploy()
    assert outcome["status"] == "failed"
    assert "no host reported serving" in outcome["reason"]
    assert "[deploy].timeout" in outcome["reason"]
    status = team.cli("status", "--json")
    assert status.json()["models"][0]["environments"]["staging"] is None


@pytest.mark.postgres
@pytest.mark.parametrize("team_registry", ["postgres"], indirect=True)
def test_hosts_follow_a_postgres_registry(team: Team) -> None:
    first, second = team.host("a"), team.host("b")
    good = team.version(0.5)
    assert team.deploy()["status"] == "deployed"
    for host in (first, second):
        wait_until(serves(host, "toy-staging", good), f"{host.name} serves", deadline_s=DEADLINE_S)
    team.version(2.0, inference=CANNOT_LOAD, test=False)
    outcome = team.deploy("--skip-tests")
    assert outcome["status"] == "rolled_back" and outcome["previous_version"] == good
    assert "this version cannot load its model" in outcome["reason"]
    for host in (first, second):
        assert (host.metadata("toy-staging") or {})["version"] == good


def _row_file(folder: Path) -> Path:
    path = folder / "row.json"
    path.write_bytes(ROW)
    return path


# --- canary and linear rollouts through the hosts (modelci.serve.traffic) ------------------------


def test_a_failing_canary_on_the_host_is_rolled_back_by_its_alarm(team: Team) -> None:
    """The candidate runs beside the old version on the host, takes its share, and the deploy
    reads its counters from the host's reports in the registry; the alarm puts the old back."""
    host = team.host("a")
    team.repo.write(
        "modelci.toml",
        rollout_table(
            "canary", canary_percent=20, bake_seconds=120.0, max_error_rate=0.1, min_requests=6
        ),
    )
    good = team.version(0.5)
    assert team.deploy()["status"] == "deployed"
    failing = team.version(1.5, inference=FAILS_ONE_IN_THREE, test=False)
    with Recorder(f"{host.url}/endpoints/toy-staging/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running", deadline_s=DEADLINE_S)
        began = time.monotonic()
        outcome = team.deploy("--skip-tests")
        ended = time.monotonic()
        done = load.count()
        wait_until(lambda: load.count() >= done + 50, "answers after the rollback")
    assert outcome["status"] == "rolled_back" and outcome["version"] == failing, outcome
    assert "alarm max_error_rate" in outcome["reason"]
    during = load.between(began, ended)
    failed = [a for a in during if a.status != 200]
    assert failed and len(failed) < 0.20 * (1 / 3) * len(during), (len(failed), len(during))
    after = [a for a in load.answers if a.at > ended]
    assert after and {(a.status, a.value) for a in after} == {(200, 3.5)}
    reports = team.events("rollout_traffic")
    assert reports and {r.details["host"] for r in reports} == {"a"}
    assert max(r.details["errors"] for r in reports) >= 1
    [failure] = team.events("deploy_failed")
    assert failure.details["alarm"] == "max_error_rate" and failure.details["measured"] > 0.1
    assert (host.metadata("toy-staging") or {})["version"] == good


def test_a_healthy_linear_rollout_on_the_host_goes_through_every_step(team: Team) -> None:
    host = team.host("a")
    team.repo.write(
        "modelci.toml",
        rollout_table("linear", linear_step_percent=50, bake_seconds=1.0, max_error_rate=0.05),
    )
    first = team.version(0.5)
    assert team.deploy()["status"] == "deployed"
    second = team.version(1.5)
    with Recorder(f"{host.url}/endpoints/toy-staging/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running", deadline_s=DEADLINE_S)
        outcome = team.deploy()
        ended = time.monotonic()
        done = load.count()
        wait_until(lambda: load.count() >= done + 50, "answers after the rollout")
    assert outcome["status"] == "deployed" and outcome["previous_version"] == first, outcome
    steps = [e.details["percent"] for e in team.events("rollout_step") if e.version == second]
    assert sorted(steps) == [50]
    assert {a.status for a in load.answers} == {200}
    assert {a.value for a in load.answers} == {3.5, 4.5}
    wait_until(serves(host, "toy-staging", second), "the host serves the new version alone")
    # the host's reports named each step's own window
    windows = {r.details["step"] for r in team.events("rollout_traffic") if r.details["ready"]}
    assert windows >= {0, *(e.id for e in team.events("rollout_step"))}
    # the deploy ended once the host reported serving the new version alone
    after = [a for a in load.answers if a.at > ended]
    assert after and {a.value for a in after} == {4.5}


def test_a_host_that_joins_mid_rollout_routes_the_step_share(team: Team) -> None:
    """A host started while a canary bakes serves the old version with the candidate beside
    it at the step's share, not the candidate alone, and reports its window; the deploy's
    alarm, over the hosts' requests, then ends the rollout as before, on both hosts."""
    first = team.host("a")
    team.repo.write(
        "modelci.toml",
        rollout_table(
            "canary", canary_percent=20, bake_seconds=600.0, max_error_rate=0.1, min_requests=40
        ),
    )
    good = team.version(0.5)
    assert team.deploy()["status"] == "deployed"
    failing = team.version(1.5, inference=FAILS_ONE_IN_THREE, test=False)
    out = team.tmp / "deploy.json"
    with out.open("wb") as stdout:
        deploy = subprocess.Popen(
            [*MODELCI, str(team.repo.root), *CANARY_DEPLOY],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: _canary(first) is not None, "the canary bakes on a", process=deploy)
        joined = team.host("b")
        split = wait_until(
            lambda: _canary(joined), "b joins the rollout", process=deploy, deadline_s=DEADLINE_S
        )
        assert split["version"] == good  # the old version serves on b, the candidate beside it
        answers = []
        with httpx.Client(headers=JSON, timeout=30) as client:
            for _ in range(100):
                answer = client.post(f"{joined.url}/endpoints/toy-staging/invocations", content=ROW)
                answers.append(prediction(answer) if answer.status_code == 200 else 500)
        candidate = [a for a in answers if a != 3.5]
        assert len(candidate) == 20 and set(candidate) <= {4.5, 500}, answers
        assert deploy.poll() is None  # still baking
        with Recorder(f"{joined.url}/endpoints/toy-staging/invocations"):
            wait_until(
                lambda: deploy.poll() is not None,
                "the alarm ends the deploy",
                deadline_s=DEADLINE_S,
            )
    finally:
        if deploy.poll() is None:
            deploy.kill()
        deploy.wait(timeout=30)
    outcome = json.loads(out.read_text())
    assert deploy.returncode == 1 and outcome["status"] == "rolled_back", outcome
    assert outcome["version"] == failing and "alarm max_error_rate" in outcome["reason"]
    hosts = {r.details["host"] for r in team.events("rollout_traffic") if r.details["requests"]}
    assert hosts == {"b"}  # only b had requests; its reports were what the alarm judged
    # each host stops the candidate at its next look: the old version alone, on both
    for host in (first, joined):
        wait_until(lambda host=host: _rollout_over(host), f"{host.name} stops the candidate")
        with httpx.Client(headers=JSON, timeout=30) as client:
            url = f"{host.url}/endpoints/toy-staging/invocations"
            assert {prediction(client.post(url, content=ROW)) for _ in range(20)} == {3.5}


def _rollout_over(host: TeamHost) -> bool:
    document = get_json(f"{host.url}/-/endpoints") or {}
    endpoint = (document.get("endpoints") or {}).get("toy-staging") or {}
    return bool(endpoint) and "rollout" not in endpoint


def _canary(host: TeamHost) -> dict[str, Any] | None:
    """The host's endpoint once its canary is ready at its step's share, else None."""
    document = get_json(f"{host.url}/-/endpoints")
    endpoint: dict[str, Any] = ((document or {}).get("endpoints") or {}).get("toy-staging") or {}
    split = endpoint.get("rollout") or {}
    ready = split.get("ready") and split.get("percent") == 20 and split.get("step")
    return endpoint if ready else None
