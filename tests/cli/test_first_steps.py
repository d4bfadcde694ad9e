"""What a new user meets first, on real git repositories: `init` on a machine whose git
default branch is `master`, a release whose main branch is missing, the hint outside a
repository, `invoke`'s content type from the file's extension."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from modelci.cli.invoke import content_type_of
from modelci.workspace import Workspace
from tests.support.cli import CliResult
from tests.support.repos import GitRepo

Run = Callable[..., CliResult]


@pytest.fixture
def master_by_default(isolated_home: Path) -> None:
    """git's default branch is `master` for this test, as on many machines."""
    subprocess.run(["git", "config", "--global", "init.defaultBranch", "master"], check=True)
    assert "defaultBranch = master" in (isolated_home / ".gitconfig").read_text()


def _settings_main(root: Path) -> str:
    return Workspace(root).project.project.main


def _release_reaches_the_versions(modelci: Run, repo: GitRepo, tag: str) -> None:
    """`release` gets past the main-branch check: nothing was trained, so the starter model is
    missing (exit 1), not a configuration error (exit 2)."""
    repo.git("tag", "-a", tag, "-m", tag)
    result = modelci("-C", repo.root, "release", tag, "--json")
    assert result.code == 1, result.stdout + result.stderr
    [entry] = result.json()["models"]
    assert entry["status"] == "missing" and "no version of" in entry["reason"]


def test_init_makes_main_where_git_defaults_to_master(
    master_by_default: None, modelci: Run, tmp_path: Path
) -> None:
    target = tmp_path / "starter"
    created = modelci("init", target, "--json")
    assert created.code == 0, created.stdout + created.stderr
    assert created.json()["git_initialised"] is True and created.json()["main"] == "main"
    repo = GitRepo(target)
    repo.commit("starter")
    assert repo.git("branch", "--show-current") == "main"

    assert modelci("-C", target, "validate").code == 0
    main = _settings_main(target)
    assert main == "main"
    assert repo.git("rev-parse", "--verify", f"refs/heads/{main}") == repo.sha()
    _release_reaches_the_versions(modelci, repo, "v1.0.0")


def test_init_in_an_existing_repository_names_its_branch(
    master_by_default: None, modelci: Run, tmp_path: Path
) -> None:
    repo = GitRepo(tmp_path / "existing")
    repo.root.mkdir()
    repo.git("init", "-q")  # on master: the default here
    repo.write("README.md", "ours\n")
    repo.commit("first")
    assert repo.git("branch", "--show-current") == "master"

    created = modelci("init", repo.root)
    assert created.code == 0, created.stderr
    assert "releases come from the branch master ([project].main)" in created.stdout
    assert 'main = "master"' in (repo.root / "modelci.toml").read_text()
    repo.commit("starter")
    assert modelci("-C", repo.root, "validate").code == 0
    assert _settings_main(repo.root) == "master"
    _release_reaches_the_versions(modelci, repo, "v1")


def test_init_before_the_first_commit_and_never_over_existing_settings(
    master_by_default: None, modelci: Run, tmp_path: Path
) -> None:
    unborn = GitRepo(tmp_path / "unborn")
    unborn.root.mkdir()
    unborn.git("init", "-q", "-b", "trunk")
    assert modelci("init", unborn.root, "--json").json()["main"] == "trunk"
    assert _settings_main(unborn.root) == "trunk"

    kept = GitRepo(tmp_path / "kept")
    kept.root.mkdir()
    kept.git("init", "-q")
    kept.write("modelci.toml", '[project]\nmain = "release"\n')
    result = modelci("init", kept.root, "--json")
    assert result.code == 0 and "modelci.toml" in result.json()["kept"]
    assert (kept.root / "modelci.toml").read_text() == '[project]\nmain = "release"\n'


def test_a_missing_main_branch_says_how_to_fix_it(
    git_repo: Callable[..., GitRepo], modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo(examples=True)
    repo.git("tag", "v1")
    monkeypatch.setenv("MODELCI_PROJECT_MAIN", "trunk")
    result = modelci("-C", repo.root, "release", "v1", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert error["key"] == "project.main"
    message = error["message"]
    assert "'trunk' is not in this repository" in message
    assert "[project] main" in message and "MODELCI_PROJECT_MAIN" in message
    assert "git branch trunk" in message

    repo.git("branch", "trunk")  # the fix the message names
    fixed = modelci("-C", repo.root, "release", "v1", "--json")
    assert fixed.code == 1, fixed.stdout  # past the check: nothing was trained
    assert {m["status"] for m in fixed.json()["models"]} == {"missing"}


def test_outside_a_repository_the_hint_names_init(modelci: Run, tmp_path: Path) -> None:
    result = modelci("-C", tmp_path, "validate", "--json")
    assert result.code == 2
    assert "`modelci init`" in result.json()["error"]["message"]
    human = modelci("-C", tmp_path, "status")
    assert human.code == 2 and "modelci init" in human.stderr


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("rows.csv", "text/csv"),
        ("dir.v2/ROWS.CSV", "text/csv"),
        ("batch.npy", "application/x-npy"),
        ("request.json", "application/json"),
        ("-", "application/json"),
        ("request.txt", "application/json"),
        ("request", "application/json"),
    ],
)
def test_invoke_takes_the_content_type_from_the_extension(data: str, expected: str) -> None:
    assert content_type_of(data) == expected
