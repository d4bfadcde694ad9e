"""A helper process in a session of its own yields the CPU where the kernel schedules
sessions as groups (Linux's autogroup): a real process, and the kernel's own word on it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from modelci.processes import LOW_PRIORITY_NICE, yield_cpu


def autogroup_nice(pid: int) -> int | None:
    """The nice value of the process's autogroup, as /proc shows it: `/autogroup-N nice V`;
    None where the kernel has no autogroups, or the process is not scheduled by one (a
    process in a cgroup with its own CPU share, as in many CI containers: the file is empty)."""
    try:
        fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    return int(fields[-1]) if fields else None


def test_a_session_of_its_own_gets_the_low_priority() -> None:
    own = autogroup_nice(os.getpid())
    if own is None:
        pytest.skip("this process is not scheduled by an autogroup here")
    process = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert autogroup_nice(process.pid) == 0
        yield_cpu(process.pid)
        assert autogroup_nice(process.pid) == LOW_PRIORITY_NICE
        assert autogroup_nice(os.getpid()) == own  # this session is left as it was
    finally:
        process.kill()
        process.wait()
    yield_cpu(process.pid)  # a process that is gone: nothing happens
