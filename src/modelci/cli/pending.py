"""Commands of the design that this build does not have yet: each says so and exits 2."""

from __future__ import annotations

from typing import Any

import click

from modelci.cli import json_option
from modelci.errors import NotBuiltYet


def _pending(name: str, help_text: str) -> click.Command:
    @click.command(
        name=name,
        help=f"{help_text}\n\nNot built yet in this release: it exits 2.",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    @json_option
    def command(json_mode: bool, **_: Any) -> None:
        raise NotBuiltYet(f"`modelci {name}` is not built yet in this release")

    return command


promote = _pending("promote", "Promote a version to the next environment.")
rollback = _pending("rollback", "Return an environment to an earlier version.")
alias = _pending("alias", "Set or show an alias such as `latest`.")
run = _pending("run", "The merge pipeline for every changed model.")
release = _pending("release", "The tag pipeline: promote to production.")
