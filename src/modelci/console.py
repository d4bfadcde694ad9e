"""Output: results on stdout (rich tables for people, one JSON document for scripts), and
warnings, progress and errors on stderr. rich is imported only when a person is reading."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelci.errors import ModelciError

if TYPE_CHECKING:
    from rich.console import Console as RichConsole


class Output:
    """Where a command's result, warnings and errors go, by `--json` or not."""

    def __init__(self, json_mode: bool = False):
        self.json_mode = json_mode
        self._out: RichConsole | None = None
        self._err: RichConsole | None = None

    @property
    def out(self) -> RichConsole:
        """The rich console on stdout (for the result only)."""
        if self._out is None:
            from rich.console import Console

            # piped output is read by programs and people alike: don't fold it at 80 columns
            width = None if sys.stdout.isatty() else 200
            self._out = Console(highlight=False, soft_wrap=True, width=width)
        return self._out

    @property
    def err(self) -> RichConsole:
        """The rich console on stderr (warnings, progress, errors)."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._err

    def result(self, data: Any, render: Callable[[RichConsole], None]) -> None:
        """Print the result: `data` as JSON, or through `render` for a person."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, default=str) + "\n")
            sys.stdout.flush()
        else:
            render(self.out)

    def warn(self, message: str) -> None:
        """A warning on stderr, in both modes (JSON goes to stdout, so stderr stays free)."""
        if self.json_mode:
            sys.stderr.write(f"warning: {message}\n")
        else:
            self.err.print(f"[yellow]warning:[/] {escape(message)}")

    def info(self, message: str) -> None:
        """A progress note on stderr, for people only."""
        if not self.json_mode:
            self.err.print(message)

    def progress(self, message: str) -> None:
        """A progress line on stderr in both modes (plain under --json, whose document goes
        to stdout), so that a long command in CI is never silent."""
        if self.json_mode:
            sys.stderr.write(message.rstrip("\n") + "\n")
            sys.stderr.flush()
        else:
            self.err.print(escape(message))

    def error(self, error: ModelciError) -> None:
        """Report a failure: a JSON document on stdout, or a red line on stderr."""
        if self.json_mode:
            sys.stdout.write(json.dumps({"ok": False, "error": error.to_json()}) + "\n")
            sys.stdout.flush()
        else:
            self.err.print(f"[bold red]error:[/] {escape(error.render())}")


def escape(text: str) -> str:
    """Text made safe to print through rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)
