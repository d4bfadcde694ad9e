"""Whether an SQLite registry file is there as it should be: first use, or lost.

SQLite makes a fresh, empty database of any missing or empty file it is asked to open, and
modelci would then migrate it and carry on as if nothing had ever been built: `status` showing
nothing, the endpoint host stopping every endpoint. So a registry file, once seen holding a
database, gets a marker beside it (`registry.db.created`); a missing or empty file with a
marker is a lost registry, an error naming the file, and only a file that never existed (or an
explicit `modelci registry init`) starts afresh. Standard library only, and a stat or two: every
command that opens the registry goes through here.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from modelci.errors import ConfigError

MARKER_SUFFIX = ".created"
_HEADER = b"SQLite format 3\x00"


def marker_path(database: Path) -> Path:
    """The marker that records that a registry was created at `database`."""
    return database.with_name(database.name + MARKER_SUFFIX)


def check_registry_file(database: Path) -> bool:
    """True when the file holds a database, False on first use (no file, no marker); raises
    ConfigError (exit 2, naming the file) when a registry made there is missing or empty, or
    when the file is not an SQLite database. A database seen for the first time is marked."""
    try:
        size = database.stat().st_size
    except FileNotFoundError:
        size = -1
    except OSError as error:
        raise ConfigError(f"cannot read the registry: {error.strerror}", file=database) from None
    if size <= 0:
        marker = marker_path(database)
        if not marker.exists():
            return False  # first use: SQLite creates it, the schema is migrated in
        what = "is missing" if size < 0 else "is empty"
        raise ConfigError(
            f"the registry {what}, but one was created there {_since(marker)}: restore it (from "
            "a backup, or move it back), or start an empty one with `modelci registry init "
            "--force`",
            file=database,
        )
    try:
        header = _read_header(database)
    except OSError as error:
        raise ConfigError(f"cannot read the registry: {error.strerror}", file=database) from None
    if header != _HEADER:
        # SQLite writes the header with the first transaction: a short file may be one being
        # made by another process right now.
        if len(header) < len(_HEADER) and not marker_path(database).exists():
            return False
        raise ConfigError(
            "the registry is not an SQLite database (damaged or overwritten): restore it, or "
            "move it away and start an empty one with `modelci registry init --force`",
            file=database,
        )
    mark_created(database)
    return True


# SQLite's locks are POSIX locks, which closing *any* descriptor of the file drops for the whole
# process ("How To Corrupt An SQLite Database File", 2.2): a registry this process already has
# open would lose its locks, and another process closing its last connection would then
# checkpoint and reset the WAL under it (its reads stale, its next write over another's). So
# the header is read through a descriptor kept open for the process's life, one per file.
_READERS: dict[tuple[int, int], int] = {}


def _read_header(database: Path) -> bytes:
    found = os.stat(database)
    key = (found.st_dev, found.st_ino)
    descriptor = _READERS.get(key)
    if descriptor is None:
        descriptor = os.open(database, os.O_RDONLY | os.O_CLOEXEC)
        _READERS[key] = descriptor  # never closed: see above
    return os.pread(descriptor, len(_HEADER), 0)


def mark_created(database: Path) -> None:
    """Record that a registry exists at `database` (kept when it already does)."""
    marker = marker_path(database)
    if marker.exists():
        return
    temporary = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps({"database": str(database), "created": time.time()}))
        os.replace(temporary, marker)
    except OSError:
        temporary.unlink(missing_ok=True)  # a read-only folder: nothing to protect here


def forget(database: Path) -> None:
    """Remove the marker (`registry init --force`: an empty registry on purpose)."""
    marker_path(database).unlink(missing_ok=True)


def _since(marker: Path) -> str:
    try:
        created = float(json.loads(marker.read_text())["created"])
    except (OSError, ValueError, KeyError, TypeError):
        return "before"
    return "on " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))
