"""The SQL registry's database: the engine for SQLite or PostgreSQL (with SQLite's pragmas and
write transactions that take the lock up front), the schema's revision and its migration, and
SQLAlchemy's errors as RegistryError."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, select, text
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from modelci.errors import ConfigError, RegistryError
from modelci.registry import mask_url

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_MS = 30_000
_CONNECT_TIMEOUT_S = 10
# pg_advisory_xact_lock key held while migrating, so that two first uses at once take turns.
_MIGRATION_LOCK = 0x6D6F64656C6369  # "modelci"
_POSTGRES_DRIVERS = {"postgresql", "postgresql+psycopg", "postgres"}


def engine_url(url: str, root: Path) -> URL:
    """The SQLAlchemy URL of a registry URL: psycopg 3 for PostgreSQL, a relative SQLite path
    taken from `root` (its folder made)."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as error:
        raise ConfigError(
            f"malformed registry URL {mask_url(url)!r}", key="registry.url"
        ) from error
    if parsed.drivername in _POSTGRES_DRIVERS:
        # psycopg 3 whatever the URL says: psycopg2 is not a dependency.
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "sqlite":
        raise ConfigError(
            f"unsupported registry URL {mask_url(url)!r}: use sqlite:/// or postgresql://",
            key="registry.url",
        )
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return parsed
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = root / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RegistryError(f"cannot create the registry folder {path.parent}: {error}") from error
    return parsed.set(database=str(path))


def sqlite_database(url: URL) -> Path | None:
    """The file of an SQLite engine URL (as `engine_url` made it absolute), None for an
    in-memory database or a server."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def create(url: URL) -> Engine:
    """The engine: SQLite with a busy timeout, WAL and BEGIN IMMEDIATE for writers;
    PostgreSQL with a connect timeout."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        sa_event.listen(engine, "connect", _sqlite_connected)
        sa_event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return create_engine(
            url,
            connect_args={"connect_timeout": _CONNECT_TIMEOUT_S, "application_name": "modelci"},
        )
    except ImportError as error:
        raise ConfigError(
            "a PostgreSQL registry needs psycopg: pip install 'modelci[postgres]'",
            key="registry.url",
        ) from error


def _sqlite_connected(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3 would open transactions itself, deferred, right before the first write: two
    # writers then both hold read locks, neither can upgrade, and one fails at once with
    # "database is locked". Autocommit mode here, and `_sqlite_begin` says BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # WAL: readers never block the writer, nor the writer readers.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A write transaction takes the write lock up front (waiting up to busy_timeout for it),
    # so concurrent writers queue instead of deadlocking on a lock upgrade.
    write = connection.get_execution_options().get("modelci_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def schema_revision(engine: Engine) -> str | None:
    """The schema revision in force, or None for a database without one; one plain query,
    so that alembic (slow to import) is loaded only when the schema is not current."""
    with engine.connect() as connection:
        try:
            revision = connection.execute(text("SELECT version_num FROM alembic_version"))
            return revision.scalar()
        except (sa_exc.OperationalError, sa_exc.ProgrammingError):
            # No table yet; any other trouble shows again, in full, while migrating.
            return None


def migrate(engine: Engine, display_url: str) -> str:
    """Apply every pending migration in one transaction (on PostgreSQL under an advisory lock,
    so that two first uses take turns); the revision now in force."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    with engine.connect() as connection:
        connection.execution_options(modelci_write=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            # Alembic runs inside this transaction (and under its lock) and commits nothing.
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            except CommandError as error:
                raise RegistryError(
                    f"the registry at {display_url} has a schema this modelci does not "
                    f"know ({error}); upgrade modelci"
                ) from error
            revision = connection.execute(text("SELECT version_num FROM alembic_version"))
            return str(revision.scalar_one())


@contextmanager
def translated(
    display_url: str, password: str | None, database: Path | None = None
) -> Iterator[None]:
    """Turn SQLAlchemy's errors into RegistryError naming the (masked) URL, the password
    scrubbed from the driver's message; an SQLite `database` that is damaged, or read-only
    where it is written, is a ConfigError naming the file (exit 2)."""
    try:
        yield
    except sa_exc.DBAPIError as error:
        reason = _scrub(password, error.orig)
        if database is not None:
            refused = file_problem(database, error.orig, reason)
            if refused is not None:
                raise refused from error
        if error.statement is None:
            # Raised while connecting, before any statement ran.
            message = f"cannot open the registry at {display_url}: {reason}"
        else:
            message = f"the registry at {display_url} failed: {reason}"
        raise RegistryError(message) from error
    except sa_exc.SQLAlchemyError as error:
        message = f"the registry at {display_url} failed: {_scrub(password, error)}"
        raise RegistryError(message) from error


def file_problem(database: Path, error: BaseException | None, reason: str) -> ConfigError | None:
    """The ConfigError for an SQLite error that says the file itself is wrong: damaged (not a
    database, malformed), or read-only (a write refused, or the file or its folder cannot be
    opened for writing); None for any other error."""
    name = str(getattr(error, "sqlite_errorname", ""))
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return ConfigError(
            f"the registry is damaged, not a valid SQLite database ({reason}): restore it from "
            "a backup, or move it away and start an empty one with `modelci registry init "
            "--force`; nothing was changed",
            file=database,
        )
    if name.startswith("SQLITE_READONLY") or (
        name.startswith("SQLITE_CANTOPEN") and not writable(database)
    ):
        folder = database.parent
        where = f"its folder {folder} is" if not os.access(folder, os.W_OK) else "the file is"
        return ConfigError(
            f"the registry is read-only: {where} not writable ({reason}); make it writable to "
            "change the registry (`status` and `history` still read it); nothing was changed",
            file=database,
        )
    return None


def writable(database: Path) -> bool:
    """Whether this process may write the SQLite file and create its journal files beside
    it (os.access honours a read-only mount and an immutable file, even for root)."""
    folder = database.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return not database.exists() or os.access(database, os.W_OK)


def read_only_url(url: URL, database: Path) -> URL:
    """The URL that opens a read-only SQLite file for reading: read-only mode, and immutable
    when its folder is read-only too and no write-ahead log waits beside it (SQLite could not
    make the shared-memory file a WAL reader needs)."""
    query = {"mode": "ro", "uri": "true"}
    wal = database.with_name(database.name + "-wal")
    if not os.access(database.parent, os.W_OK) and not wal.exists():
        query["immutable"] = "1"
    return url.set(database=f"file:{database}", query=query)


def _scrub(password: str | None, error: BaseException | None) -> str:
    reason = " ".join(str(error).split())
    if password:
        reason = reason.replace(str(password), "***")
    return reason
