"""Aliases: named pointers to versions (`latest` follows production). They live beside the
environment pointers, under `@<name>`, so they change by compare-and-set as pointers do."""

from __future__ import annotations

import re

from modelci.errors import ConfigError
from modelci.registry.base import Event, Registry

ALIAS_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
PREFIX = "@"
LATEST = "latest"


def key(name: str) -> str:
    return PREFIX + name


def is_alias(environment: str) -> bool:
    return environment.startswith(PREFIX)


def check_name(name: str, environments: list[str]) -> None:
    if not ALIAS_NAME.fullmatch(name):
        raise ConfigError(f"alias {name!r} must match {ALIAS_NAME.pattern}", key="NAME")
    if name in environments:
        raise ConfigError(
            f"{name!r} is an environment, not an alias: use deploy/promote", key="NAME"
        )


def get_alias(registry: Registry, model: str, name: str) -> str | None:
    """The version an alias names, or None."""
    pointer = registry.get_pointer(model, key(name))
    return pointer.version if pointer else None


def set_alias(registry: Registry, model: str, name: str, version: str, event: Event) -> bool:
    """Point the alias at `version` (compare-and-set); False when it already does."""
    pointer = registry.get_pointer(model, key(name))
    if pointer is not None and pointer.version == version:
        return False
    registry.set_pointer(
        model,
        key(name),
        version,
        expected_generation=pointer.generation if pointer else None,
        event=event,
    )
    return True


def aliases(registry: Registry, model: str) -> dict[str, str]:
    """Every alias of a model: name -> version."""
    return {
        p.environment[len(PREFIX) :]: p.version
        for p in registry.pointers(model)
        if is_alias(p.environment)
    }
