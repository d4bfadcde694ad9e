"""Where the repository's endpoint host says it runs (standard library only, so that reading
it costs a command nothing)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from modelci.errors import ConfigError

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


def take_lock(workspace: Workspace) -> IO[str]:
    """Take the repository's host lock (held while the returned file stays open), writing
    this process's pid in it so that `serve --stop` finds a host still starting up; a
    ConfigError when another host holds it."""
    folder = state_path(workspace).parent
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / "host.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        running = read_state(workspace)
        where = f" at {running['url']} (pid {running['pid']})" if running else ""
        raise ConfigError(
            f"an endpoint host already runs for this repository{where}; "
            "stop it with `modelci serve --stop`"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def write_state(workspace: Workspace, state: dict[str, Any]) -> None:
    """Say where this host runs (atomically: a reader sees the old file or the new)."""
    path = state_path(workspace)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, path)


def remove_state(workspace: Workspace, pid: int | None = None) -> None:
    """Remove the state file of the host `pid` (this process by default), not one another
    host wrote since; the supervisor removes the file of a host that died outright."""
    pid = os.getpid() if pid is None else pid
    path = state_path(workspace)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text())["pid"]) == pid:
            path.unlink()


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
