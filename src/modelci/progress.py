"""The one type of a progress callback: it takes one line of text."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]
