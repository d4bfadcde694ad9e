"""A read-only registry or `.modelci/` (made immutable for real: the tests run as root, whom
permission bits do not stop) is still read by `status` and `history`; a command that would
write it exits 2 saying "read-only" and naming the path, and changes nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.registry_files import VERSION, read_only, registry_with_a_version
from tests.support.repos import GitRepo
from tests.support.toy import SERVED_SPEC, write_toy

Run = Callable[..., CliResult]


def _repository(git_repo: Callable[..., GitRepo]) -> tuple[GitRepo, Path]:
    """A repository with the toy model committed and a registry holding one of its versions,
    left as a command leaves it (no write-ahead log beside it)."""
    repo = git_repo()
    write_toy(repo, SERVED_SPEC.format(bias=0.5))
    repo.commit("toy")
    db = registry_with_a_version(repo)
    assert not db.with_name("registry.db-wal").exists()
    return repo, db


def _digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def _reads_and_refuses_writes(modelci: Run, root: Path, db: Path, where: str) -> None:
    status = modelci("-C", root, "status", "--json")
    assert status.code == 0, status.stdout + status.stderr
    [model] = status.json()["models"]
    assert model["model"] == "toy" and model["latest"]["version"] == VERSION
    history = modelci("-C", root, "history", "toy", "--json")
    assert history.code == 0, history.stdout + history.stderr
    assert "events" in history.json()

    refused = modelci("-C", root, "alias", "toy", "stable", VERSION, "--json")
    assert refused.code == 2, refused.stdout + refused.stderr
    error = refused.json()["error"]
    assert error["file"] == str(db)
    assert "read-only" in error["message"] and where in error["message"], error


def test_a_read_only_registry_file_is_read_and_refuses_writes(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo, db = _repository(git_repo)
    before = _digest(db)
    with read_only(db):
        _reads_and_refuses_writes(modelci, repo.root, db, "the file is not writable")
        assert _digest(db) == before
    aliased = modelci("-C", repo.root, "alias", "toy", "stable", VERSION, "--json")
    assert aliased.code == 0, aliased.stdout + aliased.stderr  # writable again: it works


def test_a_read_only_state_folder_is_read_and_refuses_writes(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo, db = _repository(git_repo)
    state = repo.root / ".modelci"
    before = _digest(db), sorted(p.name for p in state.iterdir())
    with read_only(state):
        _reads_and_refuses_writes(modelci, repo.root, db, f"its folder {state} is not writable")
        # a command that writes elsewhere in .modelci/ names what it could not write
        built = modelci("-C", repo.root, "build", "toy", "--json")
        assert built.code == 2, built.stdout + built.stderr
        error = built.json()["error"]
        assert "read-only" in error["message"], error
        assert error["file"] is not None and Path(error["file"]).is_relative_to(state), error
        assert (_digest(db), sorted(p.name for p in state.iterdir())) == before
