"""The artifact store: content-addressed, write-once blobs named by their sha256."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path


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

    @abc.abstractmethod
    def uri_for(self, sha256: str) -> str:
        """The URI recorded with a version for this digest."""

    def tag_version(self, sha256: str, version: str, annotations: dict[str, str]) -> None:
        """Name an artifact after a version (stores that name versions, such as OCI); others do
        nothing."""
        return None
