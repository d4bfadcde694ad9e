"""Killing a real `modelci` process at a chosen moment: the process runs as a subprocess, the
moment is a real condition (a file appearing, a registry row, a child process), and the kill
is SIGKILL, which leaves the process no time to clean up. `Gate` holds a version server in
its model_fn until the test lets it go on (or fail), so that a deploy is caught waiting on
its health check; `silent_server` holds a download open forever, so that a build is caught
in `uv`."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.toy import INFERENCE
from tests.support.waiting import wait_until


def start_modelci(root: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`modelci -C ROOT ARGS...` as a process of its own, its output in the file `log` (a
    pipe nobody reads would stall it)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "modelci", "-C", str(root), *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def kill_when(
    process: subprocess.Popen[bytes], condition: Callable[[], Any], what: str, **wait: Any
) -> None:
    """SIGKILL `process` as soon as `condition` holds (failing if it exits first), and reap
    it: a zombie would still look like a live owner of what it left behind."""
    wait_until(condition, what, process=process, **wait)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


class Gate:
    """A folder through which a test holds a version server in its model_fn: `inference()`
    is the toy's handler that says it is loading, then waits for `release()`. Only a version
    server (`python -m modelci.runtime.server`) is held: training loads the model too, to
    record its input signature, and must not wait."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def inference(self) -> str:
        return (
            INFERENCE.replace("def model_fn(model_dir):", "def _model_fn(model_dir):")
            + f"""
import pathlib, sys, time

GATE = pathlib.Path({str(self.folder)!r})

def model_fn(model_dir):
    if not sys.argv[0].endswith("server.py"):  # training's signature introspection: not held
        return _model_fn(model_dir)
    (GATE / "loading").touch()
    while not (GATE / "go").exists():  # held until the test releases it
        time.sleep(0.05)
    if (GATE / "fail").exists():
        raise RuntimeError("this version cannot load its model")
    return _model_fn(model_dir)
"""
        )

    def loading(self) -> bool:
        """Whether a version server is held in model_fn."""
        return (self.folder / "loading").exists()

    def release(self, *, fail: bool) -> None:
        """Let held (and later) model_fn calls go on: to load, or to raise."""
        if fail:
            (self.folder / "fail").touch()
        (self.folder / "go").touch()


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    """A process's arguments ([] once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A port on 127.0.0.1 that accepts connections and never answers; yields the port and
    the connections accepted so far (a client caught downloading from it hangs)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener was closed: done
            while True:
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), accepted
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=10)
        for connection in accepted:
            connection.close()
