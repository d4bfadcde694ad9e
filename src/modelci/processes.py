"""Stopping a child that runs in a process group of its own (started with
`start_new_session=True`), so that whatever it started stops with it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
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
