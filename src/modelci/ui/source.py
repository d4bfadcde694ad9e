"""What the dashboard reads: a registry URL and the environments' order, from a checkout's
settings or, outside one, from the registry URL alone (as a long-lived host needs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelci.errors import ConfigError, GitError
from modelci.workspace import Workspace

DEFAULT_ENVIRONMENTS = ("staging", "production")


@dataclass(frozen=True)
class Source:
    """The registry the dashboard shows and what it knows of the project around it.

    `workspace` is None outside a checkout: the environments are then the defaults followed by
    any other the registry's pointers name, and no action is offered."""

    registry_url: str
    root: Path
    environments: tuple[str, ...]
    workspace: Workspace | None = None


def open_source(workspace: Workspace, registry_url: str | None) -> Source:
    """The source for `modelci ui`: `--registry` (or MODELCI_REGISTRY_URL) wins; else the
    checkout's `[registry].url`. Outside a checkout without a URL: ConfigError."""
    url = registry_url or os.environ.get("MODELCI_REGISTRY_URL") or None
    try:
        root = workspace.root
    except GitError:
        if url is None:
            raise ConfigError(
                f"{workspace.start} is not inside a git repository: pass --registry URL "
                "(or set MODELCI_REGISTRY_URL) to show a registry from anywhere",
                key="--registry",
            ) from None
        return Source(url, workspace.start, DEFAULT_ENVIRONMENTS)
    return Source(
        url or workspace.project_url("registry"),
        root,
        tuple(workspace.environments),
        workspace,
    )


def ordered_environments(known: tuple[str, ...], named: set[str]) -> list[str]:
    """The project's environments in order, then any other the registry names (aliases,
    under `@`, left out), sorted."""
    extra = sorted(n for n in named if n not in known and not n.startswith("@"))
    return [*known, *extra]
