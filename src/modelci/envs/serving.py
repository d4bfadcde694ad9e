"""The serving layer an environment gets beside its lock: starlette, uvicorn and the rest, pinned
(with everything they depend on) to the versions modelci itself runs with, so that local serving
and the environment agree."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from modelci.envs.lockfile import canonical, pins

# httptools and uvloop: uvicorn's fast HTTP parser and event loop (its "standard" extra)
SERVING_PACKAGES = ("starlette", "uvicorn", "prometheus-client", "numpy", "httptools", "uvloop")

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# a marker that asks for an extra: `extra == "name"` (PEP 508), wherever it stands in the marker
_EXTRA_MARKER = re.compile(r"""(?:^|[\s(])extra\s*==|==\s*extra(?:$|[\s)])""")


def serving_pins() -> list[str]:
    """`name==version` for the serving packages and everything they need, as installed in
    modelci's own environment (only what is installed here counts: extras are left out)."""
    installed = _installed()
    pins: dict[str, str] = {}
    pending = list(SERVING_PACKAGES)
    while pending:
        name = canonical(pending.pop())
        if name in pins or name not in installed:
            continue
        version, requires = _metadata(installed[name])
        pins[name] = version
        for requirement in requires:
            spec, _, marker = requirement.partition(";")
            match = _REQUIREMENT_NAME.match(spec)
            if match and not _EXTRA_MARKER.search(marker):
                pending.append(match.group(1))
    return sorted(f"{name}=={version}" for name, version in pins.items())


def _installed() -> dict[str, Path]:
    """Every distribution on sys.path by canonical name -> its `.dist-info` folder.

    Read straight from the folders' names rather than through importlib.metadata, whose
    import and lookups alone take a third of what a cached `modelci build` may take.
    """
    found: dict[str, Path] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info"):
                # `<name>-<version>.dist-info`, where the name has no '-' (it is escaped to _)
                name = folder[: -len(".dist-info")].partition("-")[0]
                found.setdefault(canonical(name), Path(entry or ".", folder))
    return found


def _metadata(dist_info: Path) -> tuple[str, list[str]]:
    """A distribution's version and `Requires-Dist` lines, from its METADATA headers."""
    version = ""
    requires: list[str] = []
    with open(dist_info / "METADATA", encoding="utf-8") as metadata:
        for line in metadata:
            if not line.strip():
                break  # the headers end at the first blank line; the description follows
            key, _, value = line.partition(":")
            if key == "Version":
                version = value.strip()
            elif key == "Requires-Dist":
                requires.append(value.strip())
    return version, requires


def extra_serving_pins(lock_text: str, serving: list[str]) -> list[str]:
    """The serving pins the lock does not already pin: where both name a package, the lock
    wins, so that the model's hash-checked versions are the ones it trains and serves with."""
    locked = pins(lock_text)
    return [pin for pin in serving if canonical(pin.split("==")[0]) not in locked]
