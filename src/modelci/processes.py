"""Stopping a child that runs in a process group of its own (started with
`start_new_session=True`), so that whatever it started stops with it."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


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
