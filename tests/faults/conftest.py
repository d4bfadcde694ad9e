"""Fault injection against real processes: the endpoint host and its version servers are
started for real, then killed with SIGKILL, their registry file emptied, truncated or moved,
their sockets cut. The toy model's repository and the host fixtures are the deploy tests'
(tests/support/hosts.py); its environment is built once for this whole folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.hosts import TRAIN, Hosts, Run, Toy, watched_hosts
from tests.support.repos import GitRepo


@pytest.fixture(scope="session")
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-envs")


@pytest.fixture
def hosts(modelci: Run, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    yield from watched_hosts(modelci, monkeypatch)


@pytest.fixture
def toy(git_repo: Callable[..., GitRepo], modelci: Run, hosts: Hosts, shared_envs: Path) -> Toy:
    repo = git_repo()
    repo.write(".gitignore", ".modelci/\n")
    repo.write("models/toy/train.py", TRAIN)
    repo.write("models/toy/requirements.txt", "")
    rows = "".join(f"{i},{i % 3},{i % 5},{i % 2}\n" for i in range(20))
    repo.write("data/toy/train.csv", "id,a,b,label\n" + rows)
    repo.write("data/toy/test.csv", "id,a,b,label\n" + rows)
    (repo.root / ".modelci").mkdir()
    (repo.root / ".modelci" / "envs").symlink_to(shared_envs, target_is_directory=True)
    hosts.roots.append(repo.root)
    return Toy(repo, modelci, hosts)
