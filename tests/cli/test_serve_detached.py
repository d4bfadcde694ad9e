"""`modelci serve` in a folder that is no checkout: it needs the shared registry and store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CliResult


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MODELCI_REGISTRY_URL", "MODELCI_STORE_URL"):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.usefixtures("no_settings")
def test_a_host_with_no_checkout_names_what_it_lacks(
    tmp_path: Path, modelci: Callable[..., CliResult]
) -> None:
    folder = tmp_path / "host"
    folder.mkdir()
    lacking = modelci("-C", folder, "serve", "--port", "0", "--json")
    assert lacking.code == 2, lacking.stdout + lacking.stderr
    error = lacking.json()["error"]
    assert "MODELCI_REGISTRY_URL" in error["message"] and "--registry" in error["message"]
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    half = modelci("-C", folder, "serve", "--registry", registry, "--port", "0", "--json")
    assert half.code == 2, half.stdout + half.stderr
    assert "MODELCI_STORE_URL" in half.json()["error"]["message"]
    assert not (tmp_path / "registry.db").exists()  # nothing was made on the way
    assert not (folder / ".modelci").exists()


@pytest.mark.usefixtures("no_settings")
def test_stop_and_status_need_no_registry(
    tmp_path: Path, modelci: Callable[..., CliResult]
) -> None:
    stopped = modelci("-C", tmp_path, "serve", "--stop", "--json")
    assert stopped.code == 0, stopped.stdout + stopped.stderr
    assert stopped.json() == {"stopped": False, "running": False}
    status = modelci("-C", tmp_path, "serve", "--status", "--json")
    assert status.code == 0 and status.json()["running"] is False
