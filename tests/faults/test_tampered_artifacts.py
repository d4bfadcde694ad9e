"""Artifacts are verified where they are used: a changed byte in a stored artifact, or in the
unpacked copy already cached from it, is refused by `deploy`, `promote`, `test`, `serve` and a
version server's restart, naming the version and the file, and the original bytes put back are
accepted again at once. `modelci test` tests the stored artifact, never the job folder."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelci.registry import open_registry
from modelci.registry.base import VersionRecord
from modelci.store.local import LocalStore
from modelci.workspace import Workspace
from tests.support.cli import CliResult
from tests.support.hosts import JSON, REGISTRY, ROW, Toy, get_json, host_url, prediction
from tests.support.waiting import wait_until

GOLDEN = '{"input": [1, 2], "output": {"predictions": [3.5]}}\n'
PLACES = ["stored", "cached"]


def _record(root: Path, version: str) -> VersionRecord:
    with open_registry(REGISTRY, root) as registry:
        record = registry.get_version(version)
    assert record is not None and record.artifact_sha256
    return record


def _target(root: Path, version: str, place: str) -> Path:
    """The stored object of the version's artifact, or its cached copy's model.json."""
    sha256 = _record(root, version).artifact_sha256
    assert sha256 is not None
    if place == "cached":
        path = root / ".modelci" / "models" / sha256 / "model.json"
    else:
        store = Workspace(root).store()
        assert isinstance(store, LocalStore)
        path = store.path_for(sha256)
    assert path.is_file(), f"{place} copy of {version} not found at {path}"
    return path


def _change_a_byte(path: Path) -> bytes:
    """Change one byte of the file in place (a model.json's bias 0.5 or 1.5 becomes 9.5: it still
    loads, and would answer wrongly); the original bytes, to put back."""
    original = path.read_bytes()
    if path.name == "model.json":
        index = original.index(b".") - 1
        changed = original[:index] + b"9" + original[index + 1 :]
    else:
        index = len(original) // 2
        changed = original[:index] + bytes([original[index] ^ 0xFF]) + original[index + 1 :]
    os.chmod(path, 0o644)  # stored objects are read-only
    path.write_bytes(changed)
    return original


def _refused(result: CliResult, version: str, path: Path) -> dict[str, Any]:
    assert result.code == 1, result.stdout + result.stderr
    error: dict[str, Any] = result.json()["error"]
    assert error["type"] == "ArtifactCorrupted", error
    assert version in error["message"] and str(path) in error["message"], error
    return error


def _answer(gateway_url: str) -> float:
    url = f"{gateway_url}/invocations"
    return prediction(httpx.post(url, content=ROW, headers=JSON, timeout=30))


@pytest.mark.slow
@pytest.mark.parametrize("place", PLACES)
def test_deploy_and_promote_refuse_a_changed_artifact(toy: Toy, place: str) -> None:
    first = toy.version(0.5)
    staging = toy.deployed()["gateway_url"]
    second = toy.version(1.5)  # trained and tested: its copy is unpacked and cached
    target = _target(toy.root, second, place)

    original = _change_a_byte(target)
    for options in ((), ("--force",)):
        _refused(toy.deploy("--version", second, *options), second, target)
    assert toy.pointer() == first
    assert _answer(staging) == 3.5  # the version in force serves on
    refusals = [e for e in toy.events("deploy_refused") if e.version == second]
    assert len(refusals) == 2 and all(str(target) in e.details["reasons"][0] for e in refusals)

    target.write_bytes(original)  # restored: accepted at once
    assert toy.deployed("--version", second)["version"] == second
    assert _answer(staging) == 4.5

    original = _change_a_byte(target)
    promote = ("-C", toy.root, "promote", "toy", "--from", "staging", "--to", "production")
    _refused(toy.modelci(*promote, "--json"), second, target)
    assert toy.pointer("production") is None

    target.write_bytes(original)
    promoted = toy.modelci(*promote, "--json")
    assert promoted.code == 0, promoted.stdout + promoted.stderr
    assert promoted.json()["status"] == "deployed"
    assert _answer(promoted.json()["gateway_url"]) == 4.5


@pytest.mark.slow
@pytest.mark.parametrize("place", PLACES)
def test_modelci_test_refuses_a_changed_artifact(toy: Toy, place: str) -> None:
    version = toy.version()
    target = _target(toy.root, version, place)
    test = ("-C", toy.root, "test", "toy", "--skip", "reproducibility", "--json")

    original = _change_a_byte(target)
    _refused(toy.modelci(*test), version, target)
    tests = _record(toy.root, version).details["tests"]
    assert tests["passed"] is True  # the refusal recorded no failed test over the good one

    target.write_bytes(original)
    tested = toy.modelci(*test)
    assert tested.code == 0, tested.stdout + tested.stderr
    assert tested.json()["passed"] is True


@pytest.mark.slow
@pytest.mark.parametrize("place", PLACES)
def test_serve_refuses_a_changed_artifact(toy: Toy, place: str) -> None:
    version = toy.version()
    toy.deployed()
    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0, stopped.stdout + stopped.stderr
    target = _target(toy.root, version, place)

    original = _change_a_byte(target)
    staging = f"{toy.hosts.start(toy.root)}/endpoints/toy-staging"
    failure = wait_until(
        lambda: toy.endpoints().get("toy-staging", {}).get("last_error"),
        "the host refuses to serve the changed artifact",
    )
    assert version in failure["error"] and str(target) in failure["error"], failure
    answer = httpx.post(f"{staging}/invocations", content=ROW, headers=JSON, timeout=30)
    assert answer.status_code == 404 and str(target) in answer.json()["message"]

    target.write_bytes(original)  # no back-off: the next look of the host serves it
    wait_until(
        lambda: toy.endpoints().get("toy-staging", {}).get("healthy"),
        "the restored artifact is served",
        deadline_s=10,
    )
    assert _answer(staging) == 3.5


@pytest.mark.slow
def test_a_restart_verifies_the_cached_copy_again(toy: Toy) -> None:
    version = toy.version()
    staging = toy.deployed()["gateway_url"]
    pid = toy.endpoints()["toy-staging"]["pid"]
    target = _target(toy.root, version, "cached")

    original = _change_a_byte(target)
    os.kill(pid, signal.SIGKILL)
    failure = wait_until(
        lambda: toy.endpoints().get("toy-staging", {}).get("last_error"),
        "the host refuses to restart on the changed copy",
    )
    assert version in failure["error"] and str(target) in failure["error"], failure
    assert toy.endpoints()["toy-staging"]["pid"] == pid  # nothing started on it

    target.write_bytes(original)
    restarted = wait_until(
        lambda: (e := toy.endpoints()["toy-staging"]) and e["healthy"] and e["pid"] != pid and e,
        "the restored copy is served again",
    )
    assert restarted["restarts"] >= 1
    assert _answer(staging) == 3.5
    health = get_json(f"{host_url(toy.root)}/-/health")
    assert health["endpoints"] == {"toy-staging": True}


@pytest.mark.slow
def test_modelci_test_uses_the_stored_artifact_not_the_job_folder(toy: Toy) -> None:
    toy.repo.write("models/toy/tests/golden.jsonl", GOLDEN)
    version = toy.version()  # trained, then tested against the golden row
    job = Path(_record(toy.root, version).details["job_dir"])
    test = ("-C", toy.root, "test", "toy", "--skip", "reproducibility", "--json")

    # the job's model says bias 99: a test that read it would answer 102, not 3.5
    (job / "model" / "model.json").write_text('{"bias": 99.0}')
    (job / "output" / "model.tar.gz").write_bytes(b"not an archive")
    for change in ("altered", "deleted"):
        if change == "deleted":
            shutil.rmtree(job)
        result = toy.modelci(*test)
        assert result.code == 0, f"{change}: {result.stdout}{result.stderr}"
        [golden] = [c for c in result.json()["checks"] if c["kind"] == "golden"]
        assert golden["passed"] is True and golden["actual"] == {"predictions": [3.5]}, golden
