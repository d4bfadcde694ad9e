"""The one loader for backend tables: a name or URL scheme -> `"module:Class"`, imported only
when chosen, so that `modelci --help` never loads boto3, ray or SQLAlchemy.

Each backend package's `__init__` owns its table; this module only looks names up and imports.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from modelci.errors import ConfigError

# The optional dependency a backend may miss -> the extra of modelci that installs it.
EXTRAS = {
    "boto3": "s3",
    "botocore": "s3",
    "ray": "ray",
    "psycopg": "postgres",
    "psycopg_binary": "postgres",
    "pyarrow": "parquet",
}


def missing_extra(
    error: ModuleNotFoundError,
    *,
    what: str,
    extra: str | None = None,
    key: str | None = None,
    file: str | None = None,
) -> ConfigError:
    """A ConfigError naming the extra to install for a missing optional package (`extra`
    when the package comes with several, else the one EXTRAS names)."""
    package = (error.name or "").split(".")[0]
    extra = extra or EXTRAS.get(package)
    hint = f": install modelci[{extra}]" if extra else ""
    return ConfigError(f"{what} needs the package {package!r}{hint}", key=key, file=file)


def require(
    package: str,
    *,
    what: str,
    extra: str | None = None,
    key: str | None = None,
    file: str | None = None,
) -> None:
    """Raise the missing-extra ConfigError now when `package` is not installed, without
    importing it: a backend that imports its package late checks this when opened, before
    anything is recorded."""
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        error = ModuleNotFoundError(f"No module named {package!r}", name=package)
        raise missing_extra(error, what=what, extra=extra, key=key, file=file)


def choose(
    table: Mapping[str, str], name: str, *, what: str, key: str, file: str | None = None
) -> str:
    """`table[name]`; an unknown name is a ConfigError naming the key and the known names."""
    target = table.get(name)
    if target is None:
        raise ConfigError(
            f"unknown {what} {name!r} (known: {', '.join(table)})", key=key, file=file
        )
    return target


def load(target: str, *, what: str, key: str | None = None, file: str | None = None) -> Any:
    """The attribute `"module:attribute"` names, its module imported now; a missing optional
    package is a ConfigError naming the extra that brings it."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "modelci":
            raise
        raise missing_extra(error, what=what, key=key, file=file) from error
    return getattr(module, attribute)
