"""Stopping a child that runs in a process group of its own (started with
`start_new_session=True`), so that whatever it started stops with it; and telling whether the
process that owns a lease or a deploy's intent still runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

# A child must not outlive a modelci that was killed (SIGKILL leaves no time to stop it):
# util-linux's setpriv asks the kernel to kill it when its parent dies. The kernel's "parent"
# is the thread that started the child, so children meant to live on are started from a
# thread that lives as long as the process (the main thread, or an event loop's).
DIE_WITH_PARENT = (
    ["setpriv", "--pdeathsig", "KILL", "--"]
    if sys.platform == "linux" and shutil.which("setpriv")
    else []
)

# coreutils' nice: a helper process that yields the CPU to the work everything waits on (the
# version's own training) on a machine with fewer cores than busy processes
LOW_PRIORITY_NICE = 10
LOW_PRIORITY = ["nice", "-n", str(LOW_PRIORITY_NICE)] if shutil.which("nice") else []


def yield_cpu(pid: int) -> None:
    """Let the process `pid`, leader of a session of its own, yield the CPU as LOW_PRIORITY
    does. Where the kernel groups each session's processes for scheduling (Linux's autogroup,
    on by default on desktops and many servers), a process's own nice value weighs only
    against its session's other processes, and a new session competes as an equal with every
    other: the session's own nice value is set here. Nothing happens where there is no such
    grouping or the kernel refuses."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(f"{LOW_PRIORITY_NICE}\n")


def stop_group(process: subprocess.Popen[Any], grace: float) -> int:
    """Send the process group led by `process` SIGTERM, then SIGKILL if it has not exited
    after `grace` seconds; its exit code."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the group is gone already
            break
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def owner() -> dict[str, Any]:
    """This process as the owner of a lease or a deploy's intent: its machine, pid and start
    time (pids are reused; the pair of pid and start time is not)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def owner_alive(who: dict[str, Any]) -> bool:
    """Whether the process `owner()` described still runs. Another machine's process cannot
    be seen from here: it is taken to be alive (its lease's expiry bounds the wait)."""
    if who.get("host") != socket.gethostname():
        return True
    try:
        pid = int(who["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    started = _start_time(pid)
    if started is not None:  # Linux: a zombie is dead, and a reused pid is another process
        return started != "Z" and who.get("start") in (None, started)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) from /proc, "Z" for a zombie, None
    where /proc cannot tell (no such process is None too, which `owner_alive` then asks
    the kernel about)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    if not fields or len(fields) < 20:
        return None
    return "Z" if fields[0] == "Z" else fields[19]
