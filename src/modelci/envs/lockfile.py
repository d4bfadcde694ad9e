"""The one reader of a lock file's text (`requirements.lock`, as `uv pip compile
--generate-hashes` writes it): its requirements as pip reads them, and the versions it pins."""

from __future__ import annotations

import re

# `name[extras]==version` at the start of a requirement
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def requirements(lock_text: str) -> list[str]:
    """The lock's requirements as pip reads them, one logical line each (continuations
    joined, comments dropped), hashes and markers kept."""
    found: list[str] = []
    current = ""
    for raw in lock_text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current += line.strip()
        if current.strip():
            found.append(" ".join(current.split()))
        current = ""
    if current.strip():
        found.append(" ".join(current.split()))
    return found


def pins(lock_text: str) -> dict[str, str]:
    """The packages a lock pins (`name==version`), by canonical name."""
    pinned: dict[str, str] = {}
    for requirement in requirements(lock_text):
        match = _PIN.match(requirement)
        if match:
            pinned[canonical(match.group(1))] = match.group(2)
    return pinned


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them: lowercase, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()
