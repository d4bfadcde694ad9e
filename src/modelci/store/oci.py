"""The OCI artifact store: `oci://host[:port]/repository`, any registry that speaks the OCI
distribution API (distribution/`docker-registry`, ECR, GHCR, Harbor, ...).

It speaks to the registry through `modelci.oci.OciClient` (auth, blobs, manifests, tags).

Layout in the repository:

- every artifact is a blob named by its sha256, which is also its OCI digest, so `get_file`
  is a blob GET by digest, verified on the way;
- every put also tags a small manifest `sha256-<hex>` that holds the blob, so that a
  registry's garbage collection never takes a blob a version still names;
- `tag_version` pushes an OCI artifact for a trained version: the empty config, model.tar.gz
  as its one layer (`application/vnd.modelci.model.layer.v1.tar+gzip`), the version's
  metadata as annotations, tagged `<model>-<sha12>`;
- `move_tag` (aliases such as `latest`) re-puts a manifest's exact bytes under another tag,
  so the digest never changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError
from modelci.oci import MANIFEST_TYPE, Manifest, OciClient
from modelci.store.base import Store, StoredArtifact
from modelci.store.local import CHUNK_SIZE, check_digest, verified_download

KEY = "store.url"
ARTIFACT_TYPE = "application/vnd.modelci.model.v1"
BLOB_ARTIFACT_TYPE = "application/vnd.modelci.blob.v1"
LAYER_TYPE = "application/vnd.modelci.model.layer.v1.tar+gzip"
BLOB_LAYER_TYPE = "application/octet-stream"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_DATA).hexdigest()


class OciStore(Store):
    """Artifacts as blobs of one repository of an OCI registry, named by their sha256."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "oci" or not parts.netloc or not parts.path.strip("/"):
            raise ConfigError(f"{url!r}: an OCI store URL is oci://host[:port]/repository", key=KEY)
        self.url = f"oci://{parts.netloc}/{parts.path.strip('/')}"
        self.client = OciClient(parts.netloc, parts.path.strip("/"), key=KEY)
        self._config_pushed = False

    def __repr__(self) -> str:
        return f"OciStore({self.url!r})"

    def uri_for(self, sha256: str) -> str:
        """`oci://host/repository@sha256:<hex>`: the blob, by digest."""
        return f"{self.url}@sha256:{check_digest(sha256)}"

    # -- writing -----------------------------------------------------------------------------

    def put_file(self, path: Path) -> StoredArtifact:
        """Push the file as a blob (unless the repository has it) and pin it with the tag
        `sha256-<hex>`."""
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
        sha256 = digest.hexdigest()
        self.client.push_blob(Path(path), f"sha256:{sha256}", size)
        self._pin(sha256, size)
        return StoredArtifact(uri=self.uri_for(sha256), sha256=sha256, size=size)

    def put_bytes(self, data: bytes) -> StoredArtifact:
        """Store bytes; as put_file."""
        sha256 = hashlib.sha256(data).hexdigest()
        self.client.push_blob(None, f"sha256:{sha256}", len(data), data=data)
        self._pin(sha256, len(data))
        return StoredArtifact(uri=self.uri_for(sha256), sha256=sha256, size=len(data))

    def _push_config(self) -> None:
        if not self._config_pushed:
            self.client.push_blob(None, EMPTY_DIGEST, len(EMPTY_DATA), data=EMPTY_DATA)
            self._config_pushed = True

    def _pin(self, sha256: str, size: int) -> None:
        tag = f"sha256-{sha256}"
        if self.client.get_manifest(tag) is not None:
            return  # written once
        self._push_config()
        manifest = artifact_manifest(sha256, size, BLOB_ARTIFACT_TYPE, BLOB_LAYER_TYPE, {})
        self.client.put_manifest(tag, manifest, MANIFEST_TYPE)

    def tag_version(self, sha256: str, version: str, annotations: dict[str, str]) -> None:
        """Push the OCI artifact of a version: model.tar.gz (the blob `sha256`) as its layer,
        `annotations` on the manifest, tagged `version` (`<model>-<sha12>`).

        A tag that already names an artifact of this blob is left as it is (written once)."""
        check_digest(sha256)
        existing = self.client.get_manifest(version)
        if existing is not None:
            layers = existing.json().get("layers") or [{}]
            if layers[0].get("digest") == f"sha256:{sha256}":
                return
        size = self.client.blob_size(f"sha256:{sha256}")
        if size is None:
            raise ArtifactNotFound(
                f"no artifact with sha256 {sha256} in {self.url} to tag {version!r}"
            )
        self._push_config()
        manifest = artifact_manifest(
            sha256, size, ARTIFACT_TYPE, LAYER_TYPE, annotations, title="model.tar.gz"
        )
        self.client.put_manifest(version, manifest, MANIFEST_TYPE)

    def follow_alias(self, model: str, version: str, alias: str) -> str | None:
        """Point `<model>-<alias>` at the version's artifact (its manifest's exact bytes
        re-put); the digest."""
        return self.move_tag(version, alias_tag(model, alias))

    def move_tag(self, source_tag: str, new_tag: str) -> str:
        """Point `new_tag` at the manifest `source_tag` names, its exact bytes re-put, so the
        digest does not change; that digest."""
        return self.client.move_tag(source_tag, new_tag)

    def manifest(self, tag: str) -> Manifest | None:
        """The manifest a tag names, or None."""
        return self.client.get_manifest(tag)

    # -- reading -----------------------------------------------------------------------------

    def _corrupted(self, sha256: str, actual: str) -> ArtifactCorrupted:
        return ArtifactCorrupted(
            f"stored artifact {self.uri_for(sha256)} is corrupted: its "
            f"content hashes to sha256 {actual}, not {sha256}"
        )

    def _not_found(self, sha256: str) -> ArtifactNotFound:
        return ArtifactNotFound(f"no artifact with sha256 {sha256} in the store at {self.url}")

    def get_file(self, sha256: str, destination: Path) -> Path:
        """Download the blob beside `destination`, verifying its digest, then rename it into
        place: the destination appears whole and verified or not at all."""
        check_digest(sha256)
        destination = Path(destination)
        with verified_download(
            destination, sha256, lambda actual: self._corrupted(sha256, actual)
        ) as out:
            try:
                with self.client.open_blob(f"sha256:{sha256}") as response:
                    for chunk in response.iter_bytes(CHUNK_SIZE):
                        out.write(chunk)
            except ArtifactNotFound:
                raise self._not_found(sha256) from None
        return destination

    def get_bytes(self, sha256: str) -> bytes:
        """The artifact's content, verified."""
        check_digest(sha256)
        try:
            with self.client.open_blob(f"sha256:{sha256}") as response:
                data = response.read()
        except ArtifactNotFound:
            raise self._not_found(sha256) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise self._corrupted(sha256, actual)
        return data

    def exists(self, sha256: str) -> bool:
        """Whether the repository holds that blob."""
        return self.client.blob_size(f"sha256:{check_digest(sha256)}") is not None


def artifact_manifest(
    sha256: str,
    size: int,
    artifact_type: str,
    layer_type: str,
    annotations: Mapping[str, str],
    *,
    title: str | None = None,
) -> bytes:
    """An OCI image manifest for one blob, as the OCI artifact guidance has it: the empty
    config, `artifactType`, the blob as its one layer. Serialised canonically (sorted keys,
    no spaces) so the same inputs always give the same digest."""
    layer: dict[str, Any] = {"mediaType": layer_type, "digest": f"sha256:{sha256}", "size": size}
    if title:
        layer["annotations"] = {"org.opencontainers.image.title": title}
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": artifact_type,
        "config": {
            "mediaType": EMPTY_TYPE,
            "digest": EMPTY_DIGEST,
            "size": len(EMPTY_DATA),
            "data": base64.b64encode(EMPTY_DATA).decode(),
        },
        "layers": [layer],
    }
    if annotations:
        manifest["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def alias_tag(model: str, alias: str) -> str:
    """The tag of a model's alias in a store's repository, which holds every model:
    `<model>-<alias>` (`churn-latest`), as versions are `<model>-<sha12>`."""
    return f"{model}-{alias}"
