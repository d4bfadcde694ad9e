"""The registry file's check keeps the process's SQLite locks: POSIX locks belong to the process
and closing any descriptor of the file drops them all, so a check that opened and closed the
file while a connection held its locks let another process reset the WAL under that connection
(a host's report was lost, overwritten by the deploy waiting for it)."""

from __future__ import annotations

import fcntl
import sqlite3
import subprocess
import sys
from pathlib import Path

from modelci.registry.presence import check_registry_file

TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "r+b") as handle:
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(3)  # held by the other process
"""


def _lockable_from_another_process(database: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", TRY_LOCK, str(database)], check=False)
    assert done.returncode in (0, 3)
    return done.returncode == 0


def test_checking_the_file_keeps_the_locks_this_process_holds(tmp_path: Path) -> None:
    database = tmp_path / "registry.db"
    with sqlite3.connect(database) as made:
        made.execute("CREATE TABLE t (x)")
    made.close()
    with database.open("r+b") as held:
        fcntl.lockf(held, fcntl.LOCK_SH)  # as an open SQLite connection holds one
        assert not _lockable_from_another_process(database)
        for _ in range(3):
            assert check_registry_file(database) is True
        assert not _lockable_from_another_process(database)
