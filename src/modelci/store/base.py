"""The artifact store: content-addressed, write-once blobs named by their sha256."""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelci.errors import ArtifactNotFound, ConfigError

# a named file's path: segments of letters, digits, `.`, `_`, `-`, none of them `.` or `..`
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


def check_name(name: str) -> str:
    """Return `name` if it is a relative path of plain segments, else raise ConfigError."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"not a stored file name (plain segments joined by /): {name!r}")
    return name


@dataclass(frozen=True)
class StoredArtifact:
    """What a store returns for a put: where the content lives and what it is."""

    uri: str
    sha256: str
    size: int


class Store(abc.ABC):
    """A place that keeps artifacts by digest. Implementations: local folder, S3, OCI."""

    @abc.abstractmethod
    def put_file(self, path: Path) -> StoredArtifact:
        """Store a file's content; storing the same content twice stores it once."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes) -> StoredArtifact:
        """Store bytes; as put_file."""

    @abc.abstractmethod
    def get_file(self, sha256: str, destination: Path) -> Path:
        """Copy the artifact to `destination`, verifying its digest on the way.
        Raises ArtifactNotFound, or ArtifactCorrupted naming the stored file."""

    @abc.abstractmethod
    def get_bytes(self, sha256: str) -> bytes:
        """The artifact's content, verified."""

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether the store holds that digest."""

    def verify(self, sha256: str) -> None:
        """Check, before a use of a copy taken earlier, that the stored object still holds the
        content its digest names: ArtifactCorrupted naming the stored object, or
        ArtifactNotFound. A store on this machine re-hashes the object; remote stores (whose
        every download is verified, and whose objects are written once) do nothing, so that a
        cached copy costs no download."""
        return None

    @abc.abstractmethod
    def uri_for(self, sha256: str) -> str:
        """The URI recorded with a version for this digest."""

    def put_named(self, name: str, data: bytes) -> str:
        """Write `data` once under the path `name` (such as a capture file,
        `capture/<endpoint>/<version>/yyyy/mm/dd/hh/<uuid>.jsonl`); its URI. Stores that keep
        only digests refuse, naming `store.url`."""
        raise ConfigError(
            f"{self!r} keeps only content-addressed artifacts, not named files such as data "
            "capture's: use a file or s3:// store",
            key="store.url",
        )

    def list_named(self, prefix: str) -> list[str]:
        """The names written under `prefix` (a folder of names), sorted."""
        return []

    def get_named(self, name: str) -> bytes:
        """The content written under `name`; ArtifactNotFound when there is none."""
        raise ArtifactNotFound(f"{self!r} holds no file named {name!r}")

    def tag_version(self, sha256: str, version: str, annotations: dict[str, str]) -> None:
        """Name an artifact after a version (stores that name versions, such as OCI); others do
        nothing."""
        return None

    def follow_alias(self, model: str, version: str, alias: str) -> str | None:
        """Point the model's `alias` at the version's artifact (stores that name versions, such
        as OCI: the tag `<model>-<alias>`), returning the digest it names; others do nothing
        and return None."""
        return None


def version_annotations(
    model: str,
    version: str,
    commit: str,
    fingerprint: str | None,
    metrics: Mapping[str, float],
    sha256: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The annotations of a version's artifact, as `Store.tag_version` takes them (OCI's own
    keys where one fits). Here, not in the OCI store, so that naming a version costs no HTTP
    client's import where the store does nothing with it."""
    annotations = {
        "org.opencontainers.image.title": version,
        "org.opencontainers.image.revision": commit,
        "ai.modelci.model": model,
        "ai.modelci.version": version,
        "ai.modelci.commit": commit,
        "ai.modelci.fingerprint": fingerprint or "",
        "ai.modelci.metrics": json.dumps(dict(metrics), sort_keys=True),
        "ai.modelci.artifact-sha256": sha256,
    }
    annotations.update(extra or {})
    return annotations
