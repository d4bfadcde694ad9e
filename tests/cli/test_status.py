"""`modelci status` and `modelci history` over a registry with versions, pointers and events."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from modelci.deploy.base import Answer, Deployer, Served, Superseded
from modelci.registry import open_registry
from modelci.registry.base import Event, VersionRecord
from modelci.status import status_report
from modelci.workspace import Workspace
from tests.support.cli import CliResult
from tests.support.repos import GitRepo

Run = Callable[..., CliResult]


def seed_registry(repo: GitRepo) -> tuple[str, str]:
    first, second = repo.sha("HEAD~1"), repo.sha("HEAD")
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        for commit in (first, second):
            registry.add_version(
                VersionRecord(
                    version=f"churn-{commit[:12]}",
                    model="churn",
                    commit=commit,
                    status="ready",
                    actor="Ada <ada@example.com>",
                )
            )
        registry.set_pointer(
            "churn",
            "staging",
            f"churn-{first[:12]}",
            expected_generation=None,
            event=Event(
                kind="deploy",
                model="churn",
                environment="staging",
                to_version=f"churn-{first[:12]}",
                commit=first,
                actor="Ada",
                ci_url="https://ci.example/1",
            ),
        )
        registry.append_event(
            Event(
                kind="gate_failed",
                model="churn",
                version=f"churn-{second[:12]}",
                commit=second,
                actor="Bob",
            )
        )
    return first, second


def test_status_reports_pointers_and_newest_version(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    repo.write("README.md", "more\n")
    repo.commit("second")
    first, second = seed_registry(repo)
    result = modelci("-C", repo.root, "status", "--json")
    assert result.code == 0
    models = {m["model"]: m for m in result.json()["models"]}
    assert set(models) == {"churn", "price"}
    staging = models["churn"]["environments"]["staging"]
    assert staging["version"] == f"churn-{first[:12]}" and staging["commit"] == first
    assert staging["time"] and staging["actor"] == "Ada"
    assert models["churn"]["environments"]["production"] is None
    assert models["churn"]["latest"] == {
        "version": f"churn-{second[:12]}",
        "commit": second,
        "status": "ready",
        "tests": "not tested",
        "metrics": {},
    }
    assert models["price"]["latest"] is None
    human = modelci("-C", repo.root, "status")
    assert f"churn-{first[:12]}" in human.stdout


def test_history_newest_first_with_actor_and_ci(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    repo.write("README.md", "more\n")
    repo.commit("second")
    first, _ = seed_registry(repo)
    result = modelci("-C", repo.root, "history", "churn", "--json")
    assert result.code == 0
    events = result.json()["events"]
    assert [e["kind"] for e in events] == ["gate_failed", "deploy"]
    deploy = events[1]
    assert set(deploy) >= {
        "id",
        "time",
        "kind",
        "model",
        "version",
        "environment",
        "from_version",
        "to_version",
        "commit",
        "actor",
        "ci_url",
    }
    assert deploy["environment"] == "staging" and deploy["ci_url"] == "https://ci.example/1"
    assert deploy["to_version"] == f"churn-{first[:12]}"
    assert (
        modelci("-C", repo.root, "history", "churn", "--limit", "1", "--json").json()["events"][0][
            "kind"
        ]
        == "gate_failed"
    )
    human = modelci("-C", repo.root, "history", "churn")
    assert "gate_failed" in human.stdout and "https://ci.example/1" in human.stdout
    assert modelci("-C", repo.root, "history", "price", "--json").json() == {"events": []}


def test_history_hides_the_events_hosts_write_in_bulk(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    """`rollout_traffic` and `shadow_batch` events are left out of a person's view, and
    counted; `--all` shows them, `--json` has them all; `--limit` counts the events shown."""
    repo = git_repo(examples=True)
    repo.write("README.md", "more\n")
    repo.commit("second")
    seed_registry(repo)  # deploy, gate_failed
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        for kind in ["rollout_traffic"] * 3 + ["rollback"] + ["shadow_batch"] * 2:
            registry.append_event(
                Event(kind=kind, model="churn", environment="staging", details={"n": 1})
            )
        for _ in range(2):
            registry.append_event(Event(kind="rollout_traffic", model="churn", details={}))

    def history(*options: str) -> CliResult:
        result = modelci("-C", repo.root, "history", "churn", *options)
        assert result.code == 0, result.stdout + result.stderr
        return result

    human = history().stdout
    assert "rollback" in human and "gate_failed" in human and "deploy" in human
    assert human.count("rollout_traffic") == human.count("shadow_batch") == 1  # the note's
    assert "5 rollout_traffic and 2 shadow_batch events hidden (--all shows them)" in human
    everything = history("--all").stdout
    assert everything.count("rollout_traffic") == 5 and everything.count("shadow_batch") == 2
    assert "hidden" not in everything
    kinds = [e["kind"] for e in history("--json").json()["events"]]
    assert kinds == [
        *["rollout_traffic"] * 2,
        *["shadow_batch"] * 2,
        "rollback",
        *["rollout_traffic"] * 3,
        "gate_failed",
        "deploy",
    ]
    assert [e["kind"] for e in history("--json", "--limit", "3").json()["events"]] == [
        "rollout_traffic",
        "rollout_traffic",
        "shadow_batch",
    ]
    # the newest shown event, and the bulk ones newer than it
    newest = history("--limit", "1").stdout
    assert "rollback" in newest and "gate_failed" not in newest
    assert "2 rollout_traffic and 2 shadow_batch events hidden" in newest
    two = history("--limit", "2").stdout
    assert "gate_failed" in two and "deploy" not in two
    assert "5 rollout_traffic and 2 shadow_batch events hidden" in two
    plain = modelci("-C", repo.root, "history", "churn", "--limit", "1", "--all").stdout
    assert "rollout_traffic" in plain and "hidden" not in plain


def test_registry_upgrade(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo(examples=True)
    first = modelci("-C", repo.root, "registry", "upgrade", "--json")
    assert first.code == 0, first.stdout
    revision = first.json()["revision"]
    assert revision and (repo.root / ".modelci/registry.db").exists()
    again = modelci("-C", repo.root, "registry", "upgrade", "--json")
    assert again.json()["revision"] == revision


def test_bad_registry_url_is_a_configuration_error(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    repo.write("modelci.toml", '[registry]\nurl = "mysql://db/x"\n')
    result = modelci("-C", repo.root, "registry", "upgrade", "--json")
    assert result.code == 2
    assert result.json()["error"]["key"] == "registry.url"
    assert "sqlite" in result.json()["error"]["message"]


class fake_deployer(Deployer):
    """A backend that serves nothing; `describe` is the base class's unless `says` is given."""

    def __init__(self, says: dict[str, object] | None = None) -> None:
        self.says = says
        self.asked: list[str] = []

    def apply(
        self,
        endpoint: str,
        version: str,
        timeout: float,
        superseded: Superseded | None = None,
    ) -> Served:
        raise AssertionError("status never deploys")

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str | None = None
    ) -> Answer:
        raise AssertionError("status never invokes")

    def describe(self, endpoint: str) -> dict[str, object] | None:
        self.asked.append(endpoint)
        return self.says if self.says is not None else super().describe(endpoint)


def test_status_asks_every_backend_and_the_default_says_nothing(
    git_repo: Callable[..., GitRepo], modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo(examples=True)
    repo.write("README.md", "more\n")
    repo.commit("second")
    first, _ = seed_registry(repo)
    quiet = fake_deployer()
    monkeypatch.setattr("modelci.deploy.open_deployer", lambda workspace: quiet)
    report = status_report(Workspace(repo.root))
    staging = {m["model"]: m for m in report["models"]}["churn"]["environments"]["staging"]
    assert quiet.asked == ["churn-staging"]  # asked whatever the backend's name
    assert staging["version"] == f"churn-{first[:12]}" and "serving" not in staging
    assert staging["endpoint"] == {
        "name": "churn-staging",
        "url": None,
        "health": "not serving",
        "version": None,
    }

    talking = fake_deployer({"healthy": True, "status": "RUNNING", "version": "v"})
    monkeypatch.setattr("modelci.deploy.open_deployer", lambda workspace: talking)
    report = status_report(Workspace(repo.root))
    staging = {m["model"]: m for m in report["models"]}["churn"]["environments"]["staging"]
    assert staging["serving"] == {"healthy": True, "status": "RUNNING", "version": "v"}
    assert staging["endpoint"] == {
        "name": "churn-staging",
        "url": None,
        "health": "healthy",
        "version": "v",
    }
    human = modelci("-C", repo.root, "status")
    assert "local: healthy (RUNNING) serves v" in human.stdout


def test_status_says_what_the_registry_holds_when_the_backend_cannot_be_asked(
    git_repo: Callable[..., GitRepo], modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo(examples=True)
    repo.write("README.md", "more\n")
    repo.commit("second")
    first, _ = seed_registry(repo)
    monkeypatch.setenv("MODELCI_DEPLOY_BACKEND", "ray")  # no [ray] address: cannot be opened
    result = modelci("-C", repo.root, "status", "--json")
    assert result.code == 0, result.stderr
    staging = {m["model"]: m for m in result.json()["models"]}["churn"]["environments"]["staging"]
    assert staging["version"] == f"churn-{first[:12]}"
    assert staging["serving"]["status"] == "UNKNOWN" and not staging["serving"]["healthy"]
    assert "ray.address" in staging["serving"]["message"]
    assert staging["endpoint"]["health"] == "unknown"


def test_read_only_commands_survive_a_broken_model_toml(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    """One invalid model.toml: status and history warn on stderr naming it and still show the
    registry's state, its model included."""
    repo = git_repo(examples=True)
    repo.write("README.md", "more\n")
    repo.commit("second")
    first, _ = seed_registry(repo)
    repo.write("models/churn/model.toml", "[train]\nentrypoint = 3\n")
    for args in (("status",), ("status", "--json"), ("history", "churn", "--json")):
        result = modelci("-C", repo.root, *args)
        assert result.code == 0, (args, result.stdout, result.stderr)
        assert "models/churn/model.toml" in result.stderr and "train.entrypoint" in result.stderr
    document = modelci("-C", repo.root, "status", "--json").json()
    models = {m["model"]: m for m in document["models"]}
    assert set(models) == {"churn", "price"}  # churn from the registry, price from the tree
    assert models["churn"]["environments"]["staging"]["version"] == f"churn-{first[:12]}"
    assert document["warnings"] and "train.entrypoint" in document["warnings"][0]
    events = modelci("-C", repo.root, "history", "churn", "--json").json()["events"]
    assert [e["kind"] for e in events] == ["gate_failed", "deploy"]
    assert "churn" in modelci("-C", repo.root, "status").stdout


def test_status_json_has_its_models_before_anything_was_built(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    repo.write("models/price/model.toml", "not toml [\n")
    result = modelci("-C", repo.root, "status", "--json")
    assert result.code == 0, result.stdout + result.stderr
    assert [m["model"] for m in result.json()["models"]] == ["churn"]
    assert "models/price/model.toml" in result.stderr
