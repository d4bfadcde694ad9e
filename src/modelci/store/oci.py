"""The OCI artifact store: `oci://host[:port]/repository`, any registry that speaks the OCI
distribution API (distribution/`docker-registry`, ECR, GHCR, Harbor, ...).

A small client over httpx, not a library: the store needs six calls of the API (blob HEAD, GET
and upload; manifest GET, HEAD and PUT), and moving an alias must re-put a manifest's exact
bytes, which a client that parses and re-serialises manifests cannot promise.

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

Plain http is used for a loopback registry (127.0.0.1, localhost, ::1) or when
MODELCI_OCI_INSECURE=1; https otherwise. Credentials come from the docker configuration
(`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: `auths`, `credHelpers`,
`credsStore`), as `docker login` writes them; for ECR, `aws ecr get-login-password | docker
login --username AWS --password-stdin <account>.dkr.ecr.<region>.amazonaws.com`. The registry
asks for Basic or for a Bearer token (fetched from its realm). Credentials never appear in a
message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError, ModelciError
from modelci.store.base import Store, StoredArtifact
from modelci.store.local import CHUNK_SIZE, check_digest, verified_download

KEY = "store.url"
INSECURE_VARIABLE = "MODELCI_OCI_INSECURE"

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.modelci.model.v1"
BLOB_ARTIFACT_TYPE = "application/vnd.modelci.blob.v1"
LAYER_TYPE = "application/vnd.modelci.model.layer.v1.tar+gzip"
BLOB_LAYER_TYPE = "application/octet-stream"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_DATA).hexdigest()
# Every manifest kind a tag may name: image manifests and indexes, OCI's and Docker's.
MANIFEST_ACCEPT = ", ".join(
    [
        MANIFEST_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
# Uploads larger than this go in chunks (ECR wants parts of at least 5 MiB but the last).
UPLOAD_CHUNK = 16 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)"
    r"[a-z0-9]+)*)*$"
)
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def is_loopback(host: str) -> bool:
    """Whether `host` (without port) names this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_reference(reference: str) -> tuple[str, str]:
    """`host[:port]/repository` -> (host[:port], repository)."""
    host, _, repository = reference.partition("/")
    if not host or not repository:
        raise ConfigError(f"{reference!r}: an OCI reference is host[:port]/repository")
    return host, repository


def docker_credentials(host: str) -> tuple[str, str] | None:
    """The (username, secret) that `docker login` stored for `host`, or None."""
    folder = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helper = (config.get("credHelpers") or {}).get(host) or config.get("credsStore")
    entry = _auth_entry(config.get("auths") or {}, host)
    if entry is not None:
        if entry.get("auth"):
            username, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            return username, secret
        if entry.get("identitytoken"):
            return "<token>", str(entry["identitytoken"])
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
    if helper:
        return _from_helper(str(helper), host)
    return None


def _auth_entry(auths: Mapping[str, Any], host: str) -> dict[str, Any] | None:
    for key, value in auths.items():
        name = re.sub(r"^https?://", "", key).split("/", 1)[0]
        if name == host and isinstance(value, dict):
            return value
    return None


def _from_helper(helper: str, host: str) -> tuple[str, str] | None:
    """Ask `docker-credential-<helper>` (as docker does) for the host's credentials."""
    try:
        done = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=host,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            return None
        answer = json.loads(done.stdout)
        return str(answer["Username"]), str(answer["Secret"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def ecr_credentials(host: str) -> tuple[str, str] | None:
    """For an ECR host with no docker login: a token from ECR's GetAuthorizationToken, with
    boto3's standard credentials (they reach AWS's API, never the registry itself)."""
    match = ECR_HOST.match(host)
    if match is None:
        return None
    try:
        import boto3

        client = boto3.session.Session().client("ecr", region_name=match.group(2))
        data = client.get_authorization_token(registryIds=[match.group(1)])
        token = data["authorizationData"][0]["authorizationToken"]
    except Exception:  # no boto3, no credentials: the 401 that follows says what to do
        return None
    username, _, secret = base64.b64decode(token).decode().partition(":")
    return username, secret


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry holds it: its exact bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


class OciClient:
    """The parts of the OCI distribution API modelci uses, for one repository of a registry."""

    def __init__(self, host: str, repository: str, *, insecure: bool | None = None) -> None:
        if not REPOSITORY.match(repository):
            raise ConfigError(
                f"{repository!r} is not a valid OCI repository name (lowercase "
                "letters, digits, separators . _ - and /)",
                key=KEY,
            )
        self.host = host
        self.repository = repository
        hostname = urlsplit(f"//{host}").hostname or host
        if insecure is None:
            insecure = is_loopback(hostname) or os.environ.get(INSECURE_VARIABLE) == "1"
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.where = f"{host}/{repository}"
        self._http: httpx.Client | None = None
        self._authorization: str | None = None
        self._credentials: tuple[str, str] | None = None
        self._credentials_read = False

    def close(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=TIMEOUT, follow_redirects=True)
            # a store has no close in its interface: the pool closes when the client goes
            weakref.finalize(self, self._http.close)
        return self._http

    def url(self, path: str) -> str:
        """The URL of `/v2/<repository>/<path>`."""
        return f"{self.base}/v2/{self.repository}/{path}"

    # -- requests and auth -------------------------------------------------------------------

    def _lookup_credentials(self) -> tuple[str, str] | None:
        if not self._credentials_read:
            self._credentials = docker_credentials(self.host) or ecr_credentials(self.host)
            self._credentials_read = True
        return self._credentials

    def request(
        self, method: str, url: str, *, doing: str, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        """One call, authenticating on a 401 challenge (Basic, or a Bearer token from the
        realm) and retrying once."""
        response = self._send(method, url, doing, kwargs)
        if response.status_code == 401:
            self._authenticate(response, doing)
            response = self._send(method, url, doing, kwargs)
        if response.status_code in ok:
            return response
        raise self._failed(response, doing)

    def _send(self, method: str, url: str, doing: str, kwargs: dict[str, Any]) -> httpx.Response:
        headers = dict(kwargs.get("headers") or {})
        if self._authorization:
            headers["Authorization"] = self._authorization
        kwargs = {k: v for k, v in kwargs.items() if k != "headers"}
        try:
            return self.http.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise ModelciError(
                f"cannot {doing} {self.where}: the OCI registry at {self.base} "
                f"does not answer ({type(error).__name__}: {error}); check that "
                "it runs and that the host and port are right"
            ) from None

    def _authenticate(self, response: httpx.Response, doing: str) -> None:
        challenge = response.headers.get("www-authenticate", "")
        scheme, _, rest = challenge.partition(" ")
        credentials = self._lookup_credentials()
        if scheme.lower() == "basic":
            if credentials is None:
                raise self._denied(doing, "no credentials")
            token = base64.b64encode(":".join(credentials).encode()).decode()
            self._authorization = f"Basic {token}"
            return
        if scheme.lower() != "bearer":
            raise self._denied(doing, f"unsupported challenge {scheme or '(none)'}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        realm = fields.pop("realm", None)
        if not realm:
            raise self._denied(doing, "a Bearer challenge without a realm")
        auth = httpx.BasicAuth(*credentials) if credentials else None
        try:
            answer = self.http.get(realm, params=fields, auth=auth)
        except httpx.TransportError as error:
            raise ModelciError(
                f"cannot {doing} {self.where}: the token service {realm} does "
                f"not answer ({type(error).__name__})"
            ) from None
        if answer.status_code != 200:
            raise self._denied(doing, f"the token service answered {answer.status_code}")
        body = answer.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise self._denied(doing, "the token service gave no token")
        self._authorization = f"Bearer {token}"

    def _denied(self, doing: str, why: str) -> ConfigError:
        login = f"docker login {self.host}"
        ecr = ECR_HOST.match(self.host)
        if ecr:
            login = (
                f"aws ecr get-login-password --region {ecr.group(2)} | docker login "
                f"--username AWS --password-stdin {self.host}"
            )
        return ConfigError(
            f"the OCI registry {self.host} refused to let us {doing} "
            f"{self.where} ({why}): log in with `{login}` (credentials are read "
            "from $DOCKER_CONFIG/config.json or ~/.docker/config.json)",
            key=KEY,
        )

    def _failed(self, response: httpx.Response, doing: str) -> ModelciError:
        code = ""
        message = response.text[:300]
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError, AttributeError):
            first = response.json()["errors"][0]
            code, message = str(first.get("code", "")), str(first.get("message", ""))
        if response.status_code in (401, 403):
            return self._denied(doing, f"{response.status_code} {code}".strip())
        if code == "NAME_UNKNOWN":
            return ConfigError(
                f"the repository {self.where} does not exist on the registry "
                "(ECR: aws ecr create-repository --repository-name "
                f"{self.repository})",
                key=KEY,
            )
        return ModelciError(
            f"the OCI registry failed to {doing} {self.where}: "
            f"HTTP {response.status_code} {code} {message}".rstrip()
        )

    # -- blobs -------------------------------------------------------------------------------

    def blob_size(self, digest: str) -> int | None:
        """The blob's size, or None when the repository does not hold it."""
        response = self.request(
            "HEAD", self.url(f"blobs/{digest}"), doing="read from", ok=(200, 404)
        )
        if response.status_code == 404:
            return None
        return int(response.headers.get("content-length", "0"))

    def push_blob(
        self, path: Path | None, digest: str, size: int, *, data: bytes | None = None
    ) -> None:
        """Upload a file's (or `data`'s) content as the blob `digest`, unless it is there."""
        if self.blob_size(digest) is not None:
            return
        started = self.request("POST", self.url("blobs/uploads/"), doing="write to", ok=(202,))
        location = self._location(started)
        if data is not None or size <= UPLOAD_CHUNK:
            body = data if data is not None else Path(path).read_bytes()  # type: ignore[arg-type]
            self._finish(location, digest, body)
            return
        assert path is not None
        offset = 0
        with open(path, "rb") as stream:
            while chunk := stream.read(UPLOAD_CHUNK):
                end = offset + len(chunk) - 1
                patched = self.request(
                    "PATCH",
                    location,
                    doing="write to",
                    ok=(202,),
                    content=chunk,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{end}",
                        "Content-Length": str(len(chunk)),
                    },
                )
                location = self._location(patched)
                offset = end + 1
        self._finish(location, digest, b"")

    def _finish(self, location: str, digest: str, body: bytes) -> None:
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}digest={digest}",
            doing="write to",
            ok=(201,),
            content=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(body))},
        )

    def _location(self, response: httpx.Response) -> str:
        location: str | None = response.headers.get("location")
        if not location:
            raise ModelciError(f"the OCI registry gave no upload location for {self.where}")
        return urljoin(str(response.url), location)

    @contextlib.contextmanager
    def open_blob(self, digest: str, doing: str = "read from") -> Iterator[httpx.Response]:
        """A streamed GET of the blob; ArtifactNotFound when the repository lacks it."""
        url = self.url(f"blobs/{digest}")
        headers: dict[str, str] = {}
        for attempt in range(2):
            if self._authorization:
                headers["Authorization"] = self._authorization
            try:
                with self.http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 401 and attempt == 0:
                        response.read()
                        self._authenticate(response, doing)
                        continue
                    if response.status_code == 404:
                        raise ArtifactNotFound(f"no blob {digest} in {self.where}")
                    if response.status_code != 200:
                        response.read()
                        raise self._failed(response, doing)
                    yield response
                    return
            except httpx.TransportError as error:
                raise ModelciError(
                    f"cannot {doing} {self.where}: the OCI registry at "
                    f"{self.base} does not answer ({type(error).__name__}: "
                    f"{error})"
                ) from None
        raise self._denied(doing, "401 after authenticating")

    # -- manifests ---------------------------------------------------------------------------

    def get_manifest(self, reference: str) -> Manifest | None:
        """The manifest a tag or digest names, exactly as stored, or None."""
        response = self.request(
            "GET",
            self.url(f"manifests/{reference}"),
            doing="read from",
            ok=(200, 404),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            return None
        data = response.content
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        stated = response.headers.get("docker-content-digest")
        if stated and stated != digest:
            raise ModelciError(
                f"the manifest {self.where}:{reference} does not match its "
                f"digest ({stated} stated, {digest} received)"
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not media_type:
            media_type = json.loads(data).get("mediaType") or MANIFEST_TYPE
        return Manifest(data, media_type, digest)

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        """Store the manifest bytes under a tag (or digest); the digest the registry gave."""
        if not TAG.match(reference) and not reference.startswith("sha256:"):
            raise ConfigError(f"{reference!r} is not a valid OCI tag")
        response = self.request(
            "PUT",
            self.url(f"manifests/{reference}"),
            doing="write to",
            ok=(201,),
            content=data,
            headers={"Content-Type": media_type},
        )
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        stated = response.headers.get("docker-content-digest")
        if stated and stated != digest:
            raise ModelciError(
                f"the OCI registry stored {self.where}:{reference} as {stated}, not {digest}"
            )
        return digest

    def move_tag(self, source: str, target: str) -> str:
        """Point tag `target` at the manifest `source` names by re-putting its exact bytes,
        so the digest stays the same; that digest."""
        manifest = self.get_manifest(source)
        if manifest is None:
            raise ArtifactNotFound(f"no manifest tagged {source!r} in {self.where}")
        digest = self.put_manifest(target, manifest.data, manifest.media_type)
        if digest != manifest.digest:  # put_manifest hashes what it sent; belt and braces
            raise ModelciError(f"moving {target!r} changed the digest of {self.where}:{source}")
        return digest


class OciStore(Store):
    """Artifacts as blobs of one repository of an OCI registry, named by their sha256."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "oci" or not parts.netloc or not parts.path.strip("/"):
            raise ConfigError(f"{url!r}: an OCI store URL is oci://host[:port]/repository", key=KEY)
        self.url = f"oci://{parts.netloc}/{parts.path.strip('/')}"
        self.client = OciClient(parts.netloc, parts.path.strip("/"))
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

    def tag_version(self, sha256: str, tag: str, annotations: Mapping[str, str]) -> str:  # type: ignore[override]
        """Push the OCI artifact of a version: model.tar.gz (the blob `sha256`) as its layer,
        `annotations` on the manifest, tagged `tag` (`<model>-<sha12>`); its digest.

        A tag that already names an artifact of this blob is left as it is (written once)."""
        check_digest(sha256)
        existing = self.client.get_manifest(tag)
        if existing is not None:
            layers = existing.json().get("layers") or [{}]
            if layers[0].get("digest") == f"sha256:{sha256}":
                return existing.digest
        size = self.client.blob_size(f"sha256:{sha256}")
        if size is None:
            raise ArtifactNotFound(f"no artifact with sha256 {sha256} in {self.url} to tag {tag!r}")
        self._push_config()
        manifest = artifact_manifest(
            sha256, size, ARTIFACT_TYPE, LAYER_TYPE, annotations, title="model.tar.gz"
        )
        return self.client.put_manifest(tag, manifest, MANIFEST_TYPE)

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


def version_annotations(
    model: str,
    version: str,
    commit: str,
    fingerprint: str | None,
    metrics: Mapping[str, float],
    sha256: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The annotations of a version's artifact (OCI's own keys where one fits)."""
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


def alias_tag(model: str, alias: str) -> str:
    """The tag of a model's alias in a store's repository, which holds every model:
    `<model>-<alias>` (`churn-latest`), as versions are `<model>-<sha12>`."""
    return f"{model}-{alias}"


def follow_alias(store: Store, model: str, version: str, alias: str) -> str | None:
    """In a store that tags versions (OCI), point `<model>-<alias>` at the version's artifact
    (its manifest's exact bytes re-put); the digest, or None for other stores."""
    if not isinstance(store, OciStore):
        return None
    return store.move_tag(version, alias_tag(model, alias))
