"""A real, throw-away PostgreSQL server for tests and benchmarks.

`temporary_postgres()` runs initdb and pg_ctl in a temporary folder (as the `postgres` OS user
when running as root, since initdb refuses root), starts the server on a free port of 127.0.0.1
with its socket inside that folder, and removes everything afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from tests.support.ports import free_port
from tests.support.waiting import wait_until

SEARCH_DIRS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql*/bin",
)
START_ATTEMPTS = 3
READY_DEADLINE_S = 60.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl) were found on this machine."""


def find_postgres_bin(search: Sequence[str] = SEARCH_DIRS, path: str | None = None) -> Path:
    """The folder holding initdb and pg_ctl: from PATH first, then the usual install folders."""
    initdb = shutil.which("initdb", path=path)
    if initdb is not None:
        folder = Path(initdb).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
    # Newest version first, compared as numbers: "9.6" sorts after "15" as text.
    candidates = [Path(found) for pattern in search for found in glob.glob(pattern)]
    candidates.sort(key=_version_key, reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH nor in "
        f"{', '.join(search)}; install them (Debian: apt-get install postgresql)"
    )


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs PostgreSQL, except in CI (`CI` set), where it fails instead."""
    import pytest

    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def temporary_postgres(*, durable: bool = False) -> Iterator[str]:
    """Start a PostgreSQL server and yield a `postgresql://` URL of an empty database.

    `durable=False` turns fsync off (fast tests; the data is thrown away anyway); a benchmark
    that wants production-like commits passes `durable=True`.
    """
    bin_dir = find_postgres_bin()
    owner = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="modelci-pg-"))
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        password = secrets.token_hex(12)
        _initdb(bin_dir, folder, owner, password)
        port = _start(bin_dir, folder, owner, durable=durable)
        try:
            admin_url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
            _wait_ready(admin_url, folder)
            yield create_database(admin_url, "modelci")
        finally:
            _pg_ctl(
                bin_dir, owner, folder, ["stop", "-D", str(folder / "data"), "-m", "fast", "-w"]
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create database `name` on the server of `url`; return the URL of the new database."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url.rpartition("/")[0] + "/" + name


def _server_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as error:
        raise PostgresUnavailable(
            "running as root, and initdb refuses root: there is no `postgres` user to run it as"
        ) from error


def _run(command: list[str], owner: pwd.struct_passwd | None, cwd: Path) -> None:
    # The server's own user runs its tools; cwd must be a folder that user can enter.
    identity = (
        {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    )
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=120, **identity
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _initdb(bin_dir: Path, folder: Path, owner: pwd.struct_passwd | None, password: str) -> None:
    password_file = folder / "password"
    password_file.write_text(password + "\n")
    if owner is not None:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    _run(
        [
            str(bin_dir / "initdb"),
            "--pgdata",
            str(folder / "data"),
            "--username",
            "postgres",
            "--pwfile",
            str(password_file),
            # Password over TCP, so that tests see real authentication (and its masking).
            "--auth-host",
            "scram-sha-256",
            "--auth-local",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ],
        owner,
        folder,
    )
    password_file.unlink()


def _start(bin_dir: Path, folder: Path, owner: pwd.struct_passwd | None, *, durable: bool) -> int:
    settings = ["-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={folder}"]
    if not durable:
        settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    failure: Exception | None = None
    # A free port can be taken between finding it and the server binding it: try another.
    for _ in range(START_ATTEMPTS):
        port = free_port()
        options = " ".join([f"-p {port}", *settings])
        try:
            _pg_ctl(
                bin_dir,
                owner,
                folder,
                [
                    "start",
                    "-D",
                    str(folder / "data"),
                    "-l",
                    str(folder / "server.log"),
                    "-w",
                    "-o",
                    options,
                ],
            )
            return port
        except RuntimeError as error:
            failure = error
    raise RuntimeError(f"PostgreSQL did not start: {failure}\n{_log(folder)}")


def _pg_ctl(
    bin_dir: Path, owner: pwd.struct_passwd | None, folder: Path, arguments: list[str]
) -> None:
    _run([str(bin_dir / "pg_ctl"), *arguments, "-t", str(int(READY_DEADLINE_S))], owner, folder)


def _wait_ready(url: str, folder: Path) -> None:
    # pg_ctl -w already waited; this proves that TCP and password authentication work too.
    import psycopg

    last_error: list[str] = []

    def answers() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=5) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError as error:
            last_error[:] = [str(error)]
            return False
        return True

    wait_until(
        answers,
        "PostgreSQL ready",
        deadline_s=READY_DEADLINE_S,
        details=lambda: f"{''.join(last_error)}\n{_log(folder)}",
    )


def _log(folder: Path) -> str:
    try:
        return (folder / "server.log").read_text(errors="replace")[-4000:]
    except OSError:
        return "(no server log)"


def _version_key(folder: Path) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in str(folder)).split()
    return tuple(int(d) for d in digits)
