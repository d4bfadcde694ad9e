"""AWS access: the account, region, role and bucket the SageMaker backends work in, clients
built from boto3's standard credential chain, and the one translator of botocore's errors into
modelci's (`translate`, `error_code`), used by every module that calls AWS.

Credentials come only from that chain (variables, profiles, instance or task roles): modelci
never reads, stores or prints them, so they reach no registry row, log or event. Errors name the
service URL that failed and the setting to change; a missing setting or credential is a
ConfigError (exit 2) raised before anything is uploaded, a service that fails is exit 1.

boto3 is imported inside functions, so that `modelci --help` never loads it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError, ModelciError
from modelci.loader import require

if TYPE_CHECKING:
    from modelci.spec import SageMakerSection

# SageMaker's scikit-learn framework images live in one account per region (from the SDK's
# image_uri_config/sklearn.json; the same for training and inference, every version).
SKLEARN_ACCOUNTS = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "me-south-1": "801668240914",
    "me-central-1": "272398656194",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-gov-west-1": "414596584902",
    "us-gov-east-1": "237065988967",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}
# A SageMaker resource name: letters, digits and hyphens, at most 63 characters.
NAME_LIMIT = 63
_NOT_NAME = re.compile(r"[^a-zA-Z0-9-]+")

NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
    "AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE, or run where an instance or task "
    "role applies; modelci reads them only through boto3's standard chain"
)
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "AuthFailure",
}
_DENIED = {"AccessDenied", "AccessDeniedException", "Forbidden", "403"}


def resource_name(text: str, limit: int = NAME_LIMIT) -> str:
    """`text` as a SageMaker name: other characters become hyphens; a name over the limit
    keeps its last 40 characters (the commit, the time) and as much of its start as fits."""
    name = _NOT_NAME.sub("-", text).strip("-") or "modelci"
    if len(name) > limit:
        tail = name[-min(40, limit - 10) :].lstrip("-")
        name = name[: limit - len(tail) - 1].rstrip("-") + "-" + tail
    return name


def split_s3(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key.strip("/")


def _setting_hint(key: str) -> str:
    return (
        f"set [{key.split('.')[0]}] {key.split('.', 1)[1]} in modelci.toml or "
        f"MODELCI_{key.replace('.', '_').upper()}"
    )


@dataclass
class SageMakerAccount:
    """Where the SageMaker backends work: region, execution role, bucket and prefix, and the
    boto3 session whose credentials they use."""

    settings: SageMakerSection
    region: str
    session: Any
    _clients: dict[str, Any]
    image_registry: str | None = None  # `[image].registry` where images are pushed

    @classmethod
    def open(
        cls,
        settings: SageMakerSection,
        *,
        need_bucket: bool = True,
        image_registry: str | None = None,
    ) -> SageMakerAccount:
        """Check the settings and find credentials and region, without a network call.

        Raises ConfigError naming `sagemaker.role_arn`, `sagemaker.bucket` or what to set for
        credentials and region.
        """
        if not settings.role_arn:
            raise ConfigError(
                "SageMaker needs an execution role: "
                + _setting_hint("sagemaker.role_arn")
                + " (arn:aws:iam::<account>:role/<name>)",
                file="modelci.toml",
                key="sagemaker.role_arn",
            )
        if need_bucket and not settings.bucket:
            raise ConfigError(
                "SageMaker needs a bucket for code, channels and models: "
                + _setting_hint("sagemaker.bucket")
                + " (s3://bucket/prefix)",
                file="modelci.toml",
                key="sagemaker.bucket",
            )
        require("boto3", what="SageMaker", extra="sagemaker")
        import boto3

        # The default session: boto3's standard chain, shared with any boto3 code around us.
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        region = settings.region or session.region_name
        if not region:
            raise ConfigError(
                "no AWS region: " + _setting_hint("sagemaker.region") + ", or AWS_DEFAULT_REGION",
                file="modelci.toml",
                key="sagemaker.region",
            )
        if session.get_credentials() is None:
            raise ConfigError(NO_CREDENTIALS)
        return cls(settings, region, session, {}, image_registry)

    # --- clients ---------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A client of `service` in the account's region (one per service), with short
        timeouts and few retries, so that a service that does not answer fails soon."""
        if service not in self._clients:
            from botocore.config import Config

            config = Config(
                connect_timeout=5,
                read_timeout=60,
                user_agent_extra="modelci",
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"} if service == "s3" else None,
            )
            self._clients[service] = self.session.client(
                service, region_name=self.region, config=config
            )
        return self._clients[service]

    @contextlib.contextmanager
    def call(self, service: str, doing: str) -> Iterator[Any]:
        """A client of `service`, with botocore's errors inside the block turned into ours:
        missing or refused credentials -> ConfigError, anything else -> ModelciError, each
        naming the service URL and what was being done."""
        client = self.client(service)
        try:
            yield client
        except ModelciError:
            raise
        except Exception as error:
            raise translate(
                error, service, client.meta.endpoint_url, doing, no_bucket=_no_bucket(doing)
            ) from None

    # --- names and places ------------------------------------------------------------------

    @property
    def bucket(self) -> str:
        return split_s3(self.settings.bucket or "")[0]

    def s3_url(self, *parts: str) -> str:
        """`s3://bucket/<prefix>/<parts...>`."""
        prefix = split_s3(self.settings.bucket or "")[1]
        return "s3://" + "/".join(p.strip("/") for p in (self.bucket, prefix, *parts) if p)

    def image_uri(self, model: str | None, commit: str | None) -> str:
        """The container image: `[sagemaker] image_uri` (its `{model}` and `{sha12}` filled
        in), else the version's image pushed by `modelci build --image --push` when
        `[image].registry` is set, else SageMaker's scikit-learn framework image of the
        region."""
        configured = self.settings.image_uri
        if configured:
            if ("{model}" in configured or "{sha12}" in configured) and not (model and commit):
                raise ConfigError(
                    "image_uri names {model} or {sha12}, which this job does not know",
                    file="modelci.toml",
                    key="sagemaker.image_uri",
                )
            return configured.replace("{model}", model or "").replace(
                "{sha12}", (commit or "")[:12]
            )
        if self.image_registry and model and commit:
            return f"{self.image_registry.rstrip('/')}/{model}:{commit[:12]}"
        account = SKLEARN_ACCOUNTS.get(self.region)
        if account is None:
            raise ConfigError(
                f"SageMaker's scikit-learn image is not published in "
                f"{self.region}: set [sagemaker] image_uri",
                file="modelci.toml",
                key="sagemaker.image_uri",
            )
        domain = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
        return (
            f"{account}.dkr.ecr.{self.region}.{domain}/sagemaker-scikit-learn:"
            f"{self.settings.framework_version}-cpu-py3"
        )

    # --- S3 -----------------------------------------------------------------------------------

    def check_bucket(self) -> None:
        """The bucket must exist and be ours to use: else ConfigError naming it."""
        from botocore.exceptions import ClientError

        with self.call("s3", f"checking the bucket {self.bucket}") as s3:
            try:
                s3.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                code = error_code(error)[0]
                url = s3.meta.endpoint_url
                if code in ("404", "NoSuchBucket", "NotFound"):
                    raise ConfigError(
                        f"the bucket {self.bucket!r} does not exist at {url}: create it, or "
                        + _setting_hint("sagemaker.bucket"),
                        file="modelci.toml",
                        key="sagemaker.bucket",
                    ) from None
                if code in _DENIED:
                    raise ConfigError(
                        f"access to the bucket {self.bucket!r} at {url} is denied for these "
                        "credentials",
                        file="modelci.toml",
                        key="sagemaker.bucket",
                    ) from None
                raise

    def upload(self, path: Path, url: str) -> str:
        """Put a local file at `url` (s3://...); the URL."""
        bucket, key = split_s3(url)
        with self.call("s3", f"uploading {path.name} to {url}") as s3:
            s3.upload_file(str(path), bucket, key)
        return url

    def exists(self, url: str) -> bool:
        """Whether an object is at `url`."""
        from botocore.exceptions import ClientError

        bucket, key = split_s3(url)
        with self.call("s3", f"looking for {url}") as s3:
            try:
                s3.head_object(Bucket=bucket, Key=key)
            except ClientError as error:
                if error_code(error)[0] in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def download(self, url: str, destination: Path) -> Path:
        """Fetch the object at `url` to `destination`."""
        bucket, key = split_s3(url)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with self.call("s3", f"downloading {url}") as s3:
            s3.download_file(bucket, key, str(destination))
        return destination


def _no_bucket(doing: str) -> ConfigError:
    return ConfigError(
        f"the bucket does not exist ({doing}): " + _setting_hint("sagemaker.bucket"),
        file="modelci.toml",
        key="sagemaker.bucket",
    )


def error_code(error: BaseException) -> tuple[str, str]:
    """The AWS error code and message of a ClientError, also one that s3transfer or boto3
    wrapped in their own exception (found through its cause); ("", "") for any other error."""
    from botocore.exceptions import ClientError

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ClientError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return "", ""
    details = cause.response.get("Error", {})
    return str(details.get("Code", "")), str(details.get("Message", ""))


def translate(
    error: BaseException,
    service: str,
    url: str | None,
    doing: str,
    *,
    key: str | None = None,
    no_bucket: ConfigError | None = None,
) -> ModelciError:
    """One of botocore's (or s3transfer's) errors as modelci's, naming the service's URL and
    what was being done: missing or refused credentials are a ConfigError (naming `key`, the
    setting at fault, when given), a missing bucket is `no_bucket` when given, a service that
    does not answer or fails is a ModelciError. A ModelciError is returned as it is."""
    from botocore.exceptions import (
        BotoCoreError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(error, ModelciError):
        return error
    where = f"{service} at {url}" if url else service
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return ConfigError(f"{NO_CREDENTIALS} (while {doing})", key=key)
    if isinstance(error, NoRegionError):
        return ConfigError(f"no AWS region for {service}: set AWS_DEFAULT_REGION (while {doing})")
    if isinstance(
        error,
        EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError,
    ):
        return ModelciError(
            f"{where} did not answer while {doing}: {error} "
            "(check the network, or AWS_ENDPOINT_URL if it points elsewhere)"
        )
    code, message = error_code(error)
    if code in _BAD_CREDENTIALS or code in _DENIED:
        return ConfigError(
            f"{where} refused the AWS credentials while {doing} ({code}: {message}); "
            + NO_CREDENTIALS.split(": ", 1)[1],
            key=key,
        )
    if code == "NoSuchBucket" and no_bucket is not None:
        return no_bucket
    if code:
        return ModelciError(f"{where} failed while {doing}: {code}: {message}")
    if isinstance(error, BotoCoreError):
        return ModelciError(f"{where} failed while {doing}: {error}")
    return ModelciError(f"{where} failed while {doing}: {type(error).__name__}: {error}")
