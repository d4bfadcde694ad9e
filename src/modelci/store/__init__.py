"""Artifact stores, chosen by the scheme of `[store] url`.

    .modelci/artifacts          a folder, relative to the repository root
    /abs/path, file:///abs/path a folder given absolutely
    s3://bucket/prefix          S3 or an S3-compatible service
    oci://host/repository       an OCI registry (ECR and others)

A store's module is imported only when chosen, so `modelci --help` never loads boto3.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from modelci.errors import ConfigError
from modelci.loader import load
from modelci.store.base import Store, StoredArtifact

__all__ = ["Store", "StoredArtifact", "open_store", "unknown_scheme"]

_STORES = {
    "file": "modelci.store.local:LocalStore",
    "s3": "modelci.store.s3:S3Store",
    "oci": "modelci.store.oci:OciStore",
}

_KEY = "store.url"
# `scheme://` marks a URL; anything else (including `C:\\...`) is a path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _local_path(url: str, root: Path) -> Path:
    """The folder a `file://` URL or plain path names; plain relative paths start at `root`."""
    if not _URL.match(url):
        path = Path(url).expanduser()
        return path if path.is_absolute() else Path(root) / path
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"{url!r}: a file:// URL takes an absolute path (file:///abs/path); "
            "write a plain path for a folder relative to the repository",
            key=_KEY,
        )
    # urllib.request costs ~70 ms of imports (ssl, http.client): only a file:// URL needs it
    from urllib.request import url2pathname

    return Path(url2pathname(parts.path))


def unknown_scheme(url: str) -> str | None:
    """Why no store serves `url` (its scheme is not in the table), or None when one does:
    `modelci validate` asks this without importing a backend."""
    match = _URL.match(url)
    scheme = match.group(1).lower() if match else "file"
    if scheme in _STORES:
        return None
    known = ", ".join(f"{name}://" for name in _STORES)
    return (
        f"unknown store scheme {scheme!r} in {url!r}; known schemes: {known} "
        "(or a plain folder path)"
    )


def open_store(url: str, root: Path) -> Store:
    """The store `url` names; a plain or relative path is a folder under `root` (the repo root).

    Raises ConfigError (key `store.url`) for an unknown scheme or a store not available here.
    """
    problem = unknown_scheme(url)
    if problem is not None:
        raise ConfigError(problem, key=_KEY)
    match = _URL.match(url)
    scheme = match.group(1).lower() if match else "file"
    store_class: type[Store] = load(_STORES[scheme], what=f"the {scheme}:// store", key=_KEY)
    if scheme == "file":
        return store_class(_local_path(url, root))  # type: ignore[call-arg]
    # Remote stores parse their own URL (bucket, prefix, registry host, repository).
    return store_class(url)  # type: ignore[call-arg]
