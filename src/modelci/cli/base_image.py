"""`modelci base-image`: a base image made from Debian packages, for `[image].base` where the
official slim Python image cannot be pulled."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console


@click.command("base-image")
@click.option(
    "--mirror",
    metavar="URL",
    default=None,
    help="The Debian mirror debootstrap fetches from [default: http://deb.debian.org/debian].",
)
@json_option
@click.pass_obj
def base_image(workspace: Workspace, mirror: str | None, json_mode: bool) -> None:
    """Build (once: later calls find it) a base image equivalent to the official slim Python
    image from Debian's packages, with the container engine, and print its tag: set it as
    [image].base (or MODELCI_IMAGE_BASE)."""
    from modelci.envs.baseimage import MIRROR, ensure_base_image
    from modelci.envs.engine import require_engine

    output = Output(json_mode)
    # Outside a repository (a base image serves many), MODELCI_IMAGE_ENGINE alone says which
    # engine; inside one, `[image].engine` with its override.
    inside = any(
        (folder / ".git").exists() for folder in (workspace.start, *workspace.start.parents)
    )
    preferred = workspace.project.image.engine if inside else os.environ.get("MODELCI_IMAGE_ENGINE")
    engine = require_engine(preferred)
    image = ensure_base_image(engine, mirror=mirror or MIRROR, progress=output.info)

    def render(console: Console) -> None:
        console.print(escape(image.tag))

    output.result(image.to_json() | {"engine": engine.name}, render)
