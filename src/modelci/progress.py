"""The one type of a progress callback: it takes one line (a note, a log line) to show."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]
