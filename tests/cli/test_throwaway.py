"""Under CI=true, the commands that record and deploy versions refuse settings that end with
the runner (an SQLite registry, a store folder, the `local` deploy backend), naming the
variables to set, unless `--allow-local` (or MODELCI_ALLOW_LOCAL=1) says it is meant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.repos import GitRepo
from tests.support.toy import SERVED_SPEC, write_toy

Run = Callable[..., CliResult]
VARIABLES = ("MODELCI_REGISTRY_URL", "MODELCI_STORE_URL", "MODELCI_DEPLOY_BACKEND")
COMMANDS = (
    ("run",),
    ("release", "v1.0.0"),
    ("deploy", "toy", "--env", "staging"),
    ("promote", "toy", "--from", "staging", "--to", "production"),
    ("rollback", "toy", "--env", "staging"),
)


@pytest.fixture
def repo(git_repo: Callable[..., GitRepo], monkeypatch: pytest.MonkeyPatch) -> Path:
    made = git_repo()
    write_toy(made, SERVED_SPEC.format(bias=0.5))
    made.commit("toy")
    made.git("tag", "v1.0.0")
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("MODELCI_ALLOW_LOCAL")
    return made.root


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_local_settings_are_refused_in_ci(repo: Path, modelci: Run, command: tuple[str]) -> None:
    refused = modelci("-C", repo, *command, "--json")
    assert refused.code == 2, refused.stdout + refused.stderr
    error = refused.json()["error"]
    assert error["key"] == "MODELCI_REGISTRY_URL"
    for variable in VARIABLES:
        assert variable in error["message"]
    assert "--allow-local" in error["message"]
    assert not (repo / ".modelci" / "registry.db").exists()  # nothing was recorded


def test_allow_local_and_ci_false_let_the_command_run(
    repo: Path, modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_refused(result: CliResult) -> bool:
        return "CI=true" not in result.stdout + result.stderr

    # each goes on to the command's own answer: rollback has nothing to roll back
    assert not_refused(modelci("-C", repo, "rollback", "toy", "--env", "staging", "--allow-local"))
    monkeypatch.setenv("MODELCI_ALLOW_LOCAL", "1")
    assert not_refused(modelci("-C", repo, "rollback", "toy", "--env", "staging"))
    monkeypatch.delenv("MODELCI_ALLOW_LOCAL")
    monkeypatch.setenv("CI", "false")
    assert not_refused(modelci("-C", repo, "rollback", "toy", "--env", "staging"))


def test_only_what_stays_local_is_named(
    repo: Path, modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCI_REGISTRY_URL", "postgresql://ci@127.0.0.1:1/modelci")
    monkeypatch.setenv("MODELCI_DEPLOY_BACKEND", "host")
    refused = modelci("-C", repo, "deploy", "toy", "--env", "staging", "--json")
    assert refused.code == 2
    error = refused.json()["error"]
    assert error["key"] == "MODELCI_STORE_URL"
    assert "MODELCI_REGISTRY_URL" not in error["message"]
    assert "MODELCI_DEPLOY_BACKEND" not in error["message"]
    monkeypatch.setenv("MODELCI_STORE_URL", "s3://team-bucket/modelci")
    shared = modelci("-C", repo, "deploy", "toy", "--env", "staging", "--json")
    assert "CI=true" not in shared.stdout + shared.stderr  # on to the (unreachable) registry
