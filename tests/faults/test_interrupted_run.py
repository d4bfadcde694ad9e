"""A killed run leaves nothing stuck: a `modelci train` killed (SIGKILL) while its job runs
takes the job with it, and the version it left `training` is marked failed by the next
command, then trained again; a `modelci build` killed while uv installs takes uv with it, and
the next build removes the temporary environment folder it left."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelci.registry import open_registry
from tests.support.cli import CliResult
from tests.support.hosts import INFERENCE, REGISTRY, SPEC, Run, Toy, alive
from tests.support.kills import children_of, command_line, kill_when, silent_server, start_modelci
from tests.support.repos import GitRepo
from tests.support.toy import train_script
from tests.support.waiting import wait_until

# train.py lines: say the job runs (with its pid), then wait until the test lets it go on
HELD = """\
import pathlib, time
gate = pathlib.Path({gate!r})
(gate / "training").write_text(str(os.getpid()))
while not (gate / "go").exists():  # held until the test releases it
    time.sleep(0.05)
"""


def _status_of(root: Path, version: str) -> str | None:
    with open_registry(REGISTRY, root) as registry:
        record = registry.get_version(version)
    return None if record is None else record.status


def test_a_version_left_training_by_a_killed_train_is_marked_failed(
    toy: Toy, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    toy.repo.write("models/toy/model.toml", SPEC.format(bias=0.5))
    toy.repo.write("models/toy/inference.py", INFERENCE)
    toy.repo.write("models/toy/train.py", train_script(HELD.format(gate=str(gate))))
    version = f"toy-{toy.repo.commit('a training the test holds')[:12]}"
    log = tmp_path / "train.log"

    train = start_modelci(toy.root, "train", "toy", log=log)
    kill_when(
        train,
        lambda: (gate / "training").exists() and _status_of(toy.root, version) == "training",
        "the job runs and the version is recorded training",
        deadline_s=120,
        details=lambda: log.read_text(errors="replace")[-2000:],
    )
    job = int((gate / "training").read_text())
    wait_until(lambda: not alive(job), "the training job dies with its modelci")

    status = toy.modelci("-C", toy.root, "status", "--json")
    assert status.code == 0, status.stdout + status.stderr
    [model] = status.json()["models"]
    assert model["latest"]["version"] == version
    assert model["latest"]["status"] == "failed", model["latest"]
    with open_registry(REGISTRY, toy.root) as registry:
        record = registry.get_version(version)
        [failed] = registry.events("toy", kind="train_failed")
    assert record is not None and record.details["interrupted"] is True
    assert f":{train.pid}, which trained it, ended" in record.details["reason"]
    assert failed.version == version and failed.details["interrupted"] is True

    # the next train (or run) trains it again
    (gate / "go").touch()
    again = toy.modelci("-C", toy.root, "train", "toy")
    assert again.code == 0, again.stdout + again.stderr
    assert _status_of(toy.root, version) == "ready"


def test_a_killed_build_takes_uv_with_it_and_the_next_build_removes_its_folder(
    git_repo: Callable[..., GitRepo], modelci: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "600")  # uv waits on the silent server, not less
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    repo = git_repo()
    repo.write(".gitignore", ".modelci/\n")
    repo.write("models/held/model.toml", '[train]\nentrypoint = "train.py"\n')
    repo.write("models/held/train.py", "print('score=1')\n")
    envs = repo.root / ".modelci" / "envs"
    log = tmp_path / "build.log"
    with silent_server() as (port, accepted):
        # a committed lock whose one package downloads from a server that never answers
        repo.write(
            "models/held/requirements.lock",
            f"heldpkg @ http://127.0.0.1:{port}/heldpkg-1.0-py3-none-any.whl "
            f"--hash=sha256:{'0' * 64}\n",
        )
        repo.commit("a model whose lock cannot be downloaded")
        build = start_modelci(repo.root, "build", "held", log=log)
        installing: list[int] = []

        def uv_downloads() -> bool:
            installing[:] = [
                pid for pid in children_of(build.pid) if "install" in command_line(pid)
            ]
            return bool(accepted and installing)

        kill_when(
            build,
            uv_downloads,
            "uv installs the lock and waits on the silent server",
            deadline_s=120,
            details=lambda: log.read_text(errors="replace")[-2000:],
        )
        [uv] = installing
        wait_until(
            lambda: not alive(uv),
            "uv dies with the killed build",
            details=lambda: " ".join(command_line(uv)),
        )
        [left] = envs.glob(".*.tmp")
        assert left.is_dir()

    # the next build (it fails: nothing serves the package now) removes what the killed left
    again: CliResult = modelci("-C", repo.root, "build", "held")
    assert again.code != 0
    assert "heldpkg" in again.stderr + again.stdout
    assert not left.exists()
    assert sorted(p.name for p in envs.iterdir() if p.name.startswith(".")) == []
