"""The building blocks of spec sections, `[train].resources`, the registry and store URLs
(checked against the backend tables), and the settings of the cloud backends (`[ray]`,
`[sagemaker]`) that `aws.py` and `raycluster.py` read; `spec.py` assembles the files."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

Scalar = str | int | float | bool
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
S3_BUCKET_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


class Strict(BaseModel):
    """A spec section: unknown keys are errors, values are not coerced across types (a
    bool is not an int, a string not a number: strict mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_memory(value: object) -> object:
    """`2GiB`, `512MB`, `1.5G` or a number of bytes -> bytes; anything else is left for the
    type check to reject."""
    if isinstance(value, str):
        match = _MEMORY.match(value)
        if match is None:
            raise ValueError(f'expected bytes or a size such as "2GiB", got {value!r}')
        unit = (match.group(2) or "").lower().removesuffix("b")
        return int(float(match.group(1)) * _MEMORY_UNITS[unit])
    return value


class ResourcesSection(Strict):
    """What one training job asks of a cluster (`[train].resources`); the local backend runs
    the job on this machine as it is."""

    num_cpus: float | None = Field(default=None, ge=0)
    num_gpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=0)  # bytes; "2GiB"-style strings accepted

    _memory = field_validator("memory", mode="before")(parse_memory)

    def asked(self) -> dict[str, float]:
        """The resources set, by name."""
        return {k: float(v) for k, v in self.model_dump().items() if v is not None}


class RegistrySection(Strict):
    """`[registry].url`: its scheme must be one of the registry table's."""

    url: NonEmpty

    @field_validator("url")
    @classmethod
    def _scheme_known(cls, url: str) -> str:
        from modelci.registry import unknown_scheme

        return _served(url, unknown_scheme(url))


class StoreSection(Strict):
    """`[store].url`: a folder path, or a URL whose scheme is one of the store table's."""

    url: NonEmpty

    @field_validator("url")
    @classmethod
    def _scheme_known(cls, url: str) -> str:
        from modelci.store import unknown_scheme

        return _served(url, unknown_scheme(url))


def _served(url: str, problem: str | None) -> str:
    if problem is not None:
        raise ValueError(problem)
    return url


class CanarySection(Strict):
    """A blue/green update's canary: this share of the new fleet takes traffic first, for
    `wait_s` seconds, before the rest shifts (SageMaker's CANARY traffic routing)."""

    percent: int = Field(default=10, ge=1, le=100)
    wait_s: int = Field(default=300, ge=0, le=3600)


class SageMakerSection(Strict):
    """Where and how SageMaker trains and serves (`[train]`/`[deploy] backend = "sagemaker"`).

    `bucket` is `s3://bucket/prefix`: code, channels and outputs go under it. `image_uri`
    defaults to SageMaker's scikit-learn framework image (`framework_version`) of the region;
    it may name `{model}` and `{sha12}`, as `modelci build --image` tags images. `max_wait_s`
    bounds how long modelci waits on SageMaker beyond the work itself: a training job's queue
    before its `[train].timeout`, an endpoint becoming InService. `alarms` are CloudWatch alarm
    names that roll a blue/green update back automatically.
    """

    role_arn: str | None = None
    region: str | None = None
    bucket: str | None = None
    instance_type: NonEmpty = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1)
    image_uri: str | None = None
    framework_version: NonEmpty = "1.2-1"
    max_wait_s: int = Field(default=1800, gt=0)
    endpoint_instance_type: NonEmpty = "ml.m5.large"
    endpoint_instance_count: int = Field(default=1, ge=1)
    alarms: list[NonEmpty] = []
    canary: CanarySection = CanarySection()

    @field_validator("bucket")
    @classmethod
    def _bucket_is_s3(cls, bucket: str | None) -> str | None:
        if bucket is not None and not S3_BUCKET_URL.fullmatch(bucket):
            raise ValueError(f"expected s3://bucket or s3://bucket/prefix, got {bucket!r}")
        return bucket


class ImageSection(Strict):
    """Container images (`modelci build --image`, `base-image`, the `container` backends).

    `base` is the image the model's is built FROM (unset: the official slim Python image of
    the environment's Python, `python:3.11-slim`); `registry` is `host/prefix` of the tag
    `<registry>/<model>:<sha12>` (unset: `modelci.local`, nothing pushed); `engine` is `podman`
    or `docker` (unset: whichever answers); `ca_bundle` is the CA bundle pip trusts inside a
    build, for networks whose HTTPS is re-signed by a proxy (unset: `SSL_CERT_FILE`, else the
    system's bundle when there is one; `""`: none).
    """

    base: NonEmpty | None = None
    registry: NonEmpty | None = None
    engine: NonEmpty | None = None
    ca_bundle: str | None = None

    @field_validator("engine")
    @classmethod
    def _engine_known(cls, engine: str | None) -> str | None:
        if engine is not None and engine not in ("podman", "docker"):
            raise ValueError(f"unknown container engine {engine!r}; expected 'podman' or 'docker'")
        return engine


class ModelSageMakerSection(Strict):
    """`[sagemaker]` of model.toml: this model's own SageMaker settings, over the project's.

    Instance type and count of its training jobs and endpoints, the training volume, managed
    spot training (`spot`, with `spot_max_wait_s`, default twice `[train].timeout`, and a
    checkpoint S3 URI), the VPC its jobs and models run in (`subnets` with
    `security_group_ids`), the KMS key of volumes, outputs and endpoints, and variables set in
    its training and serving containers.
    """

    instance_type: NonEmpty | None = None
    instance_count: int | None = Field(default=None, ge=1)
    volume_size_gb: int | None = Field(default=None, ge=1)
    endpoint_instance_type: NonEmpty | None = None
    endpoint_instance_count: int | None = Field(default=None, ge=1)
    spot: bool = False
    spot_max_wait_s: int | None = Field(default=None, gt=0)
    checkpoint_s3_uri: NonEmpty | None = None
    subnets: list[NonEmpty] = []
    security_group_ids: list[NonEmpty] = []
    kms_key_id: NonEmpty | None = None
    environment: dict[str, str] = {}

    @field_validator("checkpoint_s3_uri")
    @classmethod
    def _checkpoint_is_s3(cls, uri: str | None) -> str | None:
        if uri is not None and not S3_BUCKET_URL.fullmatch(uri):
            raise ValueError(f"expected s3://bucket/prefix, got {uri!r}")
        return uri

    @model_validator(mode="after")
    def _consistent(self) -> ModelSageMakerSection:
        if bool(self.subnets) != bool(self.security_group_ids):
            raise ValueError(
                "subnets and security_group_ids go together: a VPC needs both (or neither)"
            )
        if self.spot_max_wait_s is not None and not self.spot:
            raise ValueError("spot_max_wait_s: set only with spot = true")
        return self


class RaySection(Strict):
    """The Ray cluster of `[train]`/`[deploy] backend = "ray"`.

    `address` is the cluster's (`host:port` of its head, as `ray start --address` takes it);
    modelci talks to the head's dashboard, `dashboard_url`, by default `http://<head>:8265`.
    Ray Serve's proxy binds `serve_host:serve_port`.
    """

    address: NonEmpty | None = None
    dashboard_url: NonEmpty | None = None
    serve_host: NonEmpty = "127.0.0.1"
    serve_port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard_is_http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url


class CaptureSection(Strict):
    """`[serve.capture]`: a share of an endpoint's requests and answers recorded in
    SageMaker's data-capture format (`modelci capture`, `modelci drift`)."""

    percent: float = Field(default=0, ge=0, le=100)
    columns: list[NonEmpty] = Field(default_factory=list)


class BatchSection(Strict):
    max_size: int = Field(default=64, ge=1)
    max_wait_ms: float = Field(default=2, ge=0)


Isolation = Literal["shared", "process"]


class ServeSection(Strict):
    """A model's `[serve]`."""

    handler: str | None = None
    batch: BatchSection = BatchSection()
    workers: int = Field(default=1, ge=1)
    isolation: Isolation | None = None  # None: the project's `[serve] isolation`
    capture: CaptureSection = CaptureSection()


class HostServeSection(Strict):
    """`modelci.toml`'s `[serve]`: how the endpoint host packs versions into processes."""

    isolation: Isolation = "process"
    idle_unload: int = Field(default=900, ge=0)
    max_loaded: int = Field(default=0, ge=0)
