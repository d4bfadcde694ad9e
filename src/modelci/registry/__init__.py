"""The registry backends, chosen by the URL's scheme.

Each scheme maps to `"module:Class"`, imported only when chosen, so that importing modelci (and
`modelci --help`) never loads SQLAlchemy.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from modelci.errors import ConfigError
from modelci.loader import load
from modelci.registry.base import Event, Pointer, Registry, VersionRecord, VersionStatus

__all__ = [
    "Event",
    "Pointer",
    "Registry",
    "VersionRecord",
    "VersionStatus",
    "mask_url",
    "open_registry",
    "unknown_scheme",
]

_REGISTRIES = {
    "sqlite": "modelci.registry.sql:SqlRegistry",
    "postgresql": "modelci.registry.sql:SqlRegistry",
    "postgresql+psycopg": "modelci.registry.sql:SqlRegistry",
    "postgres": "modelci.registry.sql:SqlRegistry",
}
_KEY = "registry.url"


def open_registry(url: str, root: Path) -> Registry:
    """Open the registry at `url`; a relative SQLite path is taken from `root`, the repository.

    The schema is brought up to date on first use, not here: opening costs no query.
    Raises ConfigError (key `registry.url`) for a scheme no backend serves, and (naming the
    file) for an SQLite registry that was made and is now missing, empty or damaged.
    """
    problem = unknown_scheme(url)
    if problem is not None:
        raise ConfigError(problem, key=_KEY)
    scheme = url.partition("://")[0].lower()
    target = _REGISTRIES[scheme]
    database = sqlite_file(url, root)
    if database is not None:
        from modelci.registry.presence import check_registry_file

        check_registry_file(database)  # never a silent fresh start over a lost registry
    registry_class: type[Registry] = load(target, what=f"a {scheme}:// registry", key=_KEY)
    return registry_class(url, root=root)  # type: ignore[call-arg]


def unknown_scheme(url: str) -> str | None:
    """Why no backend serves `url` (its scheme is not in the table), or None when one does:
    `modelci validate` asks this without importing a backend."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in _REGISTRIES:
        return None
    known = ", ".join(f"{name}://" for name in _REGISTRIES)
    return f"unknown registry URL {mask_url(url)!r}: the scheme must be one of {known}"


def sqlite_file(url: str, root: Path) -> Path | None:
    """The file of a `sqlite:///path` registry (a relative path from `root`); None for a
    server URL. Parsed without SQLAlchemy, for callers that must stay cheap."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = Path(url[len(prefix) :]).expanduser()
    return path if path.is_absolute() else root / path


def mask_url(url: str) -> str:
    """The URL with its password, if any, replaced by `***`, fit for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
