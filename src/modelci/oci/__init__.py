"""A small client of the OCI distribution API for one repository of a registry (auth, blobs,
manifests, tags), used by the artifact store and by image retagging. Not a library: modelci
needs six calls of the API, and moving a tag must re-put a manifest's exact bytes, which a
client that parses and re-serialises manifests cannot promise.

Plain http is used for a loopback registry (127.0.0.1, localhost, ::1) or when
MODELCI_OCI_INSECURE=1; https otherwise. Credentials are docker login's (`credentials`); the
registry asks for Basic or for a Bearer token (fetched from its realm). Credentials never appear
in a message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from modelci.errors import ArtifactNotFound, ConfigError, ModelciError
from modelci.oci.credentials import ECR_HOST, docker_credentials, ecr_credentials

__all__ = ["ECR_HOST", "Manifest", "OciClient", "docker_credentials", "split_reference"]

INSECURE_VARIABLE = "MODELCI_OCI_INSECURE"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
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
    """The parts of the OCI distribution API modelci uses, for one repository of a registry.
    `key` is the setting a configuration error names (`store.url` for the store)."""

    def __init__(
        self,
        host: str,
        repository: str,
        *,
        insecure: bool | None = None,
        key: str | None = None,
    ) -> None:
        self.key = key
        if not REPOSITORY.fullmatch(repository):
            raise ConfigError(
                f"{repository!r} is not a valid OCI repository name (lowercase "
                "letters, digits, separators . _ - and /)",
                key=self.key,
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
            key=self.key,
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
                key=self.key,
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
        if not TAG.fullmatch(reference) and not reference.startswith("sha256:"):
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
