"""The S3 artifact store: `s3://bucket/prefix`, objects at `<prefix>/sha256/<2 hex>/<digest>`.

boto3 does the work with its standard configuration: credentials from its usual chain
(variables, profiles, SSO, instance roles), the endpoint from `AWS_ENDPOINT_URL` or
`AWS_ENDPOINT_URL_S3` (S3-compatible services, the emulator in tests), and its transfer
manager for uploads and downloads (multipart, parallel parts, past 8 MiB by default).

Objects are written once: a put hashes the file first and does nothing when the key exists,
and the upload itself carries `If-None-Match: *` (on the single PUT and on the multipart
CompleteMultipartUpload), so that even two writers racing cannot replace an object. Every
read hashes what it returns and refuses content that no longer matches its name.

No credential ever reaches a message: errors name the URL, the endpoint and the variables to
set, never their values.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError, ModelciError
from modelci.loader import missing_extra, require
from modelci.store.base import Store, StoredArtifact, check_name
from modelci.store.local import check_digest, verified_download

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

KEY = "store.url"
# S3 caps a multipart upload at 10,000 parts; boto3 grows the part size past that itself.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNKSIZE = 8 * 1024 * 1024
MAX_CONCURRENCY = 10


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without slashes at its ends)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ConfigError(f"{url!r}: an S3 store URL is s3://bucket/prefix", key=KEY)
    if parts.query or parts.fragment:
        raise ConfigError(f"{url!r}: an S3 store URL takes no query or fragment", key=KEY)
    return parts.netloc, parts.path.strip("/")


def _hash_file(path: Path) -> tuple[str, int]:
    """The file's sha256 and size (hashlib.file_digest reads into one reused buffer: about a
    quarter faster than a loop of reads on a large file)."""
    with open(path, "rb") as stream:
        digest = hashlib.file_digest(stream, "sha256")
        return digest.hexdigest(), os.fstat(stream.fileno()).st_size


def _if_none_match(params: dict[str, Any], **_: Any) -> None:
    """botocore hook: make a write conditional on the key being absent (write once)."""
    params["headers"]["If-None-Match"] = "*"


class S3Store(Store):
    """Artifacts in an S3 bucket (or an S3-compatible service), named by their sha256."""

    def __init__(self, url: str, *, transfer_config: TransferConfig | None = None) -> None:
        self.bucket, self.prefix = parse_url(url)
        require("boto3", what="the s3:// store", key=KEY)  # at open: before anything is recorded
        self.url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._transfer_config = transfer_config
        self._client: Any = None
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # -- the client ------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use (importing boto3 costs a second)."""
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ModuleNotFoundError as error:
                raise missing_extra(error, what="the s3:// store", key=KEY) from None

            retries: dict[str, Any] = {}
            if not os.environ.get("AWS_RETRY_MODE") and not os.environ.get("AWS_MAX_ATTEMPTS"):
                # botocore's legacy default retries a refused connection five times over
                # fifteen seconds; the standard mode gives up after three tries and ~3 s.
                retries = {"mode": "standard"}
            config = Config(retries=retries or None, max_pool_connections=MAX_CONCURRENCY * 2)
            client = boto3.session.Session().client("s3", config=config)
            for operation in ("PutObject", "CompleteMultipartUpload"):
                client.meta.events.register(f"before-call.s3.{operation}", _if_none_match)
            self._client = client
        return self._client

    @property
    def endpoint(self) -> str:
        """The endpoint the client talks to (AWS's, or AWS_ENDPOINT_URL[_S3])."""
        return str(self.client.meta.endpoint_url)

    def _config(self) -> TransferConfig:
        if self._transfer_config is None:
            from boto3.s3.transfer import TransferConfig

            self._transfer_config = TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD,
                multipart_chunksize=MULTIPART_CHUNKSIZE,
                max_concurrency=MAX_CONCURRENCY,
                use_threads=True,
            )
        return self._transfer_config

    # -- names -----------------------------------------------------------------------------------

    def key_for(self, sha256: str) -> str:
        """The object key of a digest: `<prefix>/sha256/<first two hex>/<digest>`."""
        check_digest(sha256)
        tail = f"sha256/{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{tail}" if self.prefix else tail

    def uri_for(self, sha256: str) -> str:
        """`s3://bucket/prefix/sha256/<2 hex>/<digest>`."""
        return f"s3://{self.bucket}/{self.key_for(sha256)}"

    # -- errors ----------------------------------------------------------------------------------

    def _translate(self, error: BaseException, doing: str) -> ModelciError:
        """boto3's error as ours, through the one translator: configuration (exit 2, naming
        `store.url`) or the service failing (exit 1). A bare 404 here comes from a HEAD of
        the bucket: it is not there."""
        from modelci.aws import error_code, translate

        if error_code(error)[0] == "404":
            return self._no_bucket()
        return translate(
            error, "S3", self.endpoint, f"{doing} {self.url}", key=KEY, no_bucket=self._no_bucket()
        )

    def _no_bucket(self) -> ConfigError:
        return ConfigError(
            f"the S3 bucket {self.bucket!r} does not exist at {self.endpoint}: "
            f"create it, or point store.url (MODELCI_STORE_URL) at one that does",
            key=KEY,
        )

    def _check_bucket(self, doing: str) -> None:
        """The bucket exists and the credentials may use it; asked once per store, only when
        a 404 needs explaining: a missing key and a missing bucket answer a HEAD alike."""
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            raise self._translate(error, doing) from None
        self._bucket_checked = True

    def _head(self, sha256: str, doing: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self.key_for(sha256)
            )
        except ClientError as error:
            if _is_missing(error):
                self._check_bucket(doing)
                return None
            raise self._translate(error, doing) from None
        except Exception as error:
            raise self._translate(error, doing) from None
        return head

    # -- writing ---------------------------------------------------------------------------------

    def put_file(self, path: Path) -> StoredArtifact:
        """Store a file's content once: hash it, and upload it unless the key exists."""
        sha256, size = _hash_file(Path(path))
        if self._head(sha256, "writing to") is None:
            self._upload(Path(path), sha256)
        return StoredArtifact(uri=self.uri_for(sha256), sha256=sha256, size=size)

    def put_bytes(self, data: bytes) -> StoredArtifact:
        """Store bytes; as put_file."""
        sha256 = hashlib.sha256(data).hexdigest()
        if self._head(sha256, "writing to") is None:
            self._put_object(data, sha256)
        return StoredArtifact(uri=self.uri_for(sha256), sha256=sha256, size=len(data))

    def _upload(self, path: Path, sha256: str) -> None:
        from boto3.exceptions import S3UploadFailedError

        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                self.key_for(sha256),
                ExtraArgs={"Metadata": {"sha256": sha256}},
                Config=self._config(),
            )
        except S3UploadFailedError as error:
            # boto3 wraps the ClientError of a failed upload, keeping it as the context
            self._written_by_another(error.__cause__ or error.__context__ or error, sha256)
        except Exception as error:
            self._written_by_another(error, sha256)

    def _put_object(self, data: bytes, sha256: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.key_for(sha256), Body=data, Metadata={"sha256": sha256}
            )
        except Exception as error:
            self._written_by_another(error, sha256)

    def _written_by_another(self, error: BaseException, sha256: str) -> None:
        """Return when a conditional write lost to another writer of the same content (412,
        or 409 while theirs is in flight) and the object is now there; raise ours otherwise."""
        if _lost_race(error) and self._head(sha256, "writing to") is not None:
            return
        raise self._translate(error, "writing to") from None

    # -- reading ---------------------------------------------------------------------------------

    def _not_found(self, sha256: str) -> ArtifactNotFound:
        return ArtifactNotFound(
            f"no artifact with sha256 {sha256} in the store at {self.url} "
            f"(looked for {self.uri_for(sha256)})"
        )

    def _corrupted(self, sha256: str, actual: str) -> ArtifactCorrupted:
        return ArtifactCorrupted(
            f"stored artifact {self.uri_for(sha256)} is corrupted: its content hashes to "
            f"sha256 {actual}, not {sha256}; delete the object and store the artifact again"
        )

    def get_file(self, sha256: str, destination: Path) -> Path:
        """Download the artifact beside `destination`, verify its digest, then rename it into
        place: the destination appears whole and verified or not at all."""
        from botocore.exceptions import ClientError

        key = self.key_for(sha256)
        destination = Path(destination)
        with verified_download(
            destination, sha256, lambda actual: self._corrupted(sha256, actual)
        ) as out:
            try:
                self.client.download_fileobj(self.bucket, key, out, Config=self._config())
            except ClientError as error:
                if _is_missing(error):
                    self._check_bucket("reading from")
                    raise self._not_found(sha256) from None
                raise self._translate(error, "reading from") from None
            except ModelciError:
                raise
            except Exception as error:
                raise self._translate(error, "reading from") from None
        return destination

    def get_bytes(self, sha256: str) -> bytes:
        """The artifact's content, verified."""
        from botocore.exceptions import ClientError

        key = self.key_for(sha256)
        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if _is_missing(error):
                self._check_bucket("reading from")
                raise self._not_found(sha256) from None
            raise self._translate(error, "reading from") from None
        except Exception as error:
            raise self._translate(error, "reading from") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise self._corrupted(sha256, actual)
        return data

    def exists(self, sha256: str) -> bool:
        """Whether the bucket holds that digest (present, not verified)."""
        return self._head(sha256, "reading from") is not None

    # -- named files -----------------------------------------------------------------------------

    def _named_key(self, name: str) -> str:
        check_name(name.strip("/"))
        return f"{self.prefix}/{name.strip('/')}" if self.prefix else name.strip("/")

    def put_named(self, name: str, data: bytes) -> str:
        """Put the object `<prefix>/<name>`."""
        key = self._named_key(name)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as error:
            raise self._translate(error, "writing to") from None
        return f"s3://{self.bucket}/{key}"

    def list_named(self, prefix: str) -> list[str]:
        """The objects under `<prefix>/<prefix>/`, as names without the store's prefix."""
        folder = self._named_key(prefix) + "/"
        cut = len(self.prefix) + 1 if self.prefix else 0
        names: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=folder):
                names += [entry["Key"][cut:] for entry in page.get("Contents", [])]
        except Exception as error:
            raise self._translate(error, "reading from") from None
        return sorted(names)

    def get_named(self, name: str) -> bytes:
        """The object `<prefix>/<name>`."""
        from botocore.exceptions import ClientError

        key = self._named_key(name)
        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if _is_missing(error):
                raise ArtifactNotFound(f"no object s3://{self.bucket}/{key}") from None
            raise self._translate(error, "reading from") from None
        except Exception as error:
            raise self._translate(error, "reading from") from None
        return data


def _is_missing(error: Any) -> bool:
    """Whether a ClientError says the key (or, for a HEAD, maybe the bucket) is not there."""
    from modelci.aws import error_code

    return error_code(error)[0] in ("404", "NoSuchKey", "NoSuchBucket")


def _lost_race(error: BaseException | None) -> bool:
    """Whether a conditional write failed because the key now exists (412), or because a
    concurrent conditional write to it is in flight (409 ConditionalRequestConflict)."""
    from botocore.exceptions import ClientError

    from modelci.aws import error_code

    if not isinstance(error, ClientError):
        return False
    return error_code(error)[0] in ("PreconditionFailed", "412", "ConditionalRequestConflict")
