"""Fault injection against real processes: the endpoint host and its version servers are
started for real, then killed with SIGKILL, their registry file emptied, truncated or moved,
their sockets cut. The toy model's repository and the host fixtures are the deploy tests'
(tests/support/hosts.py); its environment is built once for this whole folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.hosts import Hosts, Run, Toy, hosted_toy, watched_hosts
from tests.support.repos import GitRepo


@pytest.fixture(scope="session")
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-envs")


@pytest.fixture
def hosts(modelci: Run, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    yield from watched_hosts(modelci, monkeypatch)


@pytest.fixture
def toy(git_repo: Callable[..., GitRepo], modelci: Run, hosts: Hosts, shared_envs: Path) -> Toy:
    return hosted_toy(git_repo(), modelci, hosts, shared_envs)
