"""Waiting for a condition with a deadline: the one poll loop of the tests and benchmarks."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEADLINE_S = 30.0
PAUSE_S = 0.05


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    deadline_s: float = DEADLINE_S,
    pause_s: float = PAUSE_S,
    process: subprocess.Popen[Any] | None = None,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Fails (AssertionError naming `what`, then `details()` such as a log's tail) early when
    `process` has exited, late at the deadline. `condition` may raise to fail at once.
    """
    deadline = time.monotonic() + deadline_s
    while True:
        if process is not None and process.poll() is not None:
            reason = f"{what}: the process exited with {process.returncode}"
            break
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            reason = f"not within {deadline_s:g} s: {what}"
            break
        time.sleep(pause_s)  # the poll interval, bounded by the deadline
    raise AssertionError(f"{reason}\n{details()}" if details is not None else reason)
