"""Losing the registry never takes endpoints down, and is never a silent fresh start."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from modelci.registry import open_registry
from tests.support.cli import CliResult
from tests.support.hosts import JSON, ROW, Toy, get_json, host_url, prediction
from tests.support.registry_files import registry_with_a_version
from tests.support.repos import GitRepo
from tests.support.waiting import wait_until

REGISTRY = "sqlite:///.modelci/registry.db"
KEEPS_SERVING_S = 6.0  # three registry polls of the host


def _empty(db: Path) -> None:
    db.write_bytes(b"")


def _truncate(db: Path) -> None:
    with db.open("r+b") as handle:
        handle.truncate(db.stat().st_size // 3)


def _move(db: Path) -> None:
    db.rename(db.with_name("registry.db.moved"))


def _remove_with_marker(db: Path) -> None:
    for path in db.parent.glob(db.name + "*"):  # rm registry.db*: the marker goes too
        path.unlink()


def _replace_with_fresh(db: Path) -> None:
    fresh = db.with_name("fresh.db")
    with open_registry(f"sqlite:///{fresh}", db.parent) as registry:
        registry.upgrade()  # the schema and nothing else, as a fresh start would make
    for path in db.parent.glob(db.name + "-*"):
        path.unlink()
    fresh.replace(db)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage",
    [_empty, _truncate, _move, _remove_with_marker, _replace_with_fresh],
    ids=["empty", "truncate", "move", "remove-with-marker", "replace-with-fresh"],
)
def test_lost_registry_leaves_endpoints_serving(toy: Toy, damage: Callable[[Path], None]) -> None:
    version = toy.version()
    gateway = toy.deployed()["gateway_url"]
    health_url = f"{host_url(toy.root)}/-/health"
    assert get_json(health_url)["status"] == "ok"
    assert get_json(health_url)["registry"]["ok"] is True

    damage(toy.root / ".modelci/registry.db")
    health = wait_until(
        lambda: (h := get_json(health_url)) and not h["registry"]["ok"] and h,
        "/-/health reports the registry as unreadable",
    )
    assert health["status"] == "degraded" and health["registry"]["error"]
    assert health["endpoints"] == {"toy-staging": True}

    answered = 0
    deadline = time.monotonic() + KEEPS_SERVING_S
    while time.monotonic() < deadline:
        answer = httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON, timeout=10)
        assert prediction(answer) == 3.5
        answered += 1
    assert answered >= 10
    assert httpx.get(f"{gateway}/metadata").json()["version"] == version
    assert not get_json(health_url)["registry"]["ok"]
    log = (toy.root / ".modelci/serve/host.log").read_text()
    assert "the registry cannot be read; still serving toy-staging=" + version in log


def _status(modelci: Callable[..., CliResult], root: Path) -> CliResult:
    return modelci("-C", root, "status", "--json")


@pytest.mark.parametrize("damage", [_empty, _move], ids=["empty", "move"])
def test_status_on_a_lost_registry_exits_2_naming_the_file(
    git_repo: Callable[..., GitRepo],
    modelci: Callable[..., CliResult],
    damage: Callable[[Path], None],
) -> None:
    repo = git_repo()
    db = registry_with_a_version(repo)
    assert _status(modelci, repo.root).json()["models"][0]["model"] == "toy"

    damage(db)
    for _ in range(2):  # and the failed attempt created nothing
        lost = _status(modelci, repo.root)
        assert lost.code == 2, lost.stdout + lost.stderr
        error = lost.json()["error"]
        assert error["file"] == str(db) and "registry init --force" in error["message"]
        assert not db.exists() or db.stat().st_size == 0
    refused = modelci("-C", repo.root, "registry", "init", "--json")
    assert refused.code == 2 and refused.json()["error"]["file"] == str(db)

    fresh = modelci("-C", repo.root, "registry", "init", "--force", "--json")
    assert fresh.code == 0, fresh.stdout + fresh.stderr
    assert fresh.json()["created"] is True and fresh.json()["file"] == str(db)
    assert _status(modelci, repo.root).json() == {"models": [], "warnings": []}


def _overwrite(db: Path) -> None:
    db.write_bytes(b"not a database at all\n" * 100)


@pytest.mark.parametrize(
    ("damage", "said"),
    [(_overwrite, "not an SQLite database"), (_truncate, "damaged, not a valid SQLite database")],
    ids=["overwritten", "truncated"],
)
def test_a_damaged_registry_file_is_refused_not_replaced(
    git_repo: Callable[..., GitRepo],
    modelci: Callable[..., CliResult],
    damage: Callable[[Path], None],
    said: str,
) -> None:
    repo = git_repo()
    db = registry_with_a_version(repo)
    damage(db)
    damaged = db.read_bytes()
    for args in (("status",), ("history", "toy"), ("registry", "init", "--force")):
        refused = modelci("-C", repo.root, *args, "--json")
        assert refused.code == 2, refused.stdout
        assert refused.json()["error"]["file"] == str(db)
        assert said in refused.json()["error"]["message"]
    assert db.read_bytes() == damaged  # nothing stored was lost, nor "repaired"


def test_first_use_and_registry_init_make_a_registry(
    git_repo: Callable[..., GitRepo], modelci: Callable[..., CliResult]
) -> None:
    repo = git_repo()
    db = repo.root / ".modelci/registry.db"
    assert _status(modelci, repo.root).code == 0 and not db.exists()
    made = modelci("-C", repo.root, "registry", "init", "--json")
    assert made.code == 0 and made.json()["created"] is True
    assert db.with_name("registry.db.created").is_file()
    again = modelci("-C", repo.root, "registry", "init", "--json")
    assert again.code == 0 and again.json()["created"] is False
    assert _status(modelci, repo.root).json() == {"models": [], "warnings": []}
