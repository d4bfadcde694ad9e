"""Where the repository's endpoint host says it runs (standard library only, so that reading
it costs a command nothing)."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelci.workspace import Workspace

STATE_FILE = "serve.json"


def state_path(workspace: Workspace) -> Path:
    """`.modelci/serve/serve.json`: the running host's pid and URL."""
    return workspace.state_dir / "serve" / STATE_FILE


def read_state(workspace: Workspace) -> dict[str, Any]:
    """What the running host wrote about itself, or {} when none runs."""
    try:
        data: dict[str, Any] = json.loads(state_path(workspace).read_text())
    except (OSError, ValueError):
        return {}
    try:
        os.kill(int(data["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return {}
    # A host killed outright leaves its file behind, and its pid may since belong to another
    # process (or to a zombie): only a host holding the lock runs.
    return data if _lock_held(state_path(workspace).parent / "host.lock") else {}


def starting_pid(workspace: Workspace) -> int | None:
    """The pid of a host that holds the lock but may not have written its state yet (it is
    still starting up), or None when no host holds it."""
    lock = state_path(workspace).parent / "host.lock"
    if not _lock_held(lock):
        return None
    try:
        return int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _lock_held(path: Path) -> bool:
    try:
        handle = path.open("a+")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
