"""Fault injection against real processes: the endpoint host and its version servers are
started for real, then killed with SIGKILL, their registry file emptied, truncated or moved,
their sockets cut. The toy model's repository and the host fixtures are the deploy tests'
(tests/support/hosts.py); its environment is built once for this whole folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-envs")
