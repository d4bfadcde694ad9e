"""Image names and moving an image's tag without a container engine: the manifest's exact bytes
are put again under the new tag, so the image's digest never changes. ECR through its API
(BatchGetImage, PutImage) with boto3's credentials; any other registry through the OCI
distribution API (`modelci.oci`) with the docker login's."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from modelci.errors import ArtifactNotFound, ConfigError, ModelciError
from modelci.loader import missing_extra
from modelci.oci import ECR_HOST

if TYPE_CHECKING:
    from modelci.workspace import Workspace

DEFAULT_REGISTRY = "modelci.local"
REGISTRY_VARIABLE = "MODELCI_IMAGE_REGISTRY"

# Media types a tag of an image may name, for ECR's BatchGetImage.
IMAGE_MANIFEST_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
]


def is_ecr(repository: str) -> bool:
    """Whether `host/repository` is in Amazon ECR (`<account>.dkr.ecr.<region>.amazonaws.com`),
    or MODELCI_IMAGE_REGISTRY_KIND=ecr says so (ECR behind another name, such as a proxy)."""
    if os.environ.get("MODELCI_IMAGE_REGISTRY_KIND", "").lower() == "ecr":
        return True
    return ECR_HOST.match(repository.partition("/")[0]) is not None


def retag_image(repository: str, tag: str, new_tag: str, *, missing_ok: bool = False) -> str | None:
    """Give the image `repository:tag` the tag `new_tag` too, without an engine: the image's
    manifest, exact bytes, is put again under the new tag, so its digest does not change.
    `repository` is `host[:port]/path`. ECR goes through its API (BatchGetImage, PutImage)
    with boto3's credentials; any other registry through the OCI distribution API with the
    docker login's. Returns the digest (None when the image is missing and `missing_ok`)."""
    try:
        if is_ecr(repository):
            return _retag_ecr(repository, tag, new_tag)
        from modelci.oci import OciClient, split_reference

        host, path = split_reference(repository)
        client = OciClient(host, path)
        try:
            return client.move_tag(tag, new_tag)
        finally:
            client.close()
    except ArtifactNotFound:
        if missing_ok:
            return None
        raise


def _retag_ecr(repository: str, tag: str, new_tag: str) -> str:
    host, _, name = repository.partition("/")
    match = ECR_HOST.match(host)
    account, region = (match.group(1), match.group(2)) if match else (None, None)
    try:
        import boto3
    except ModuleNotFoundError as error:
        raise missing_extra(error, what="moving an ECR image tag") from None
    from modelci.aws import error_code, translate

    registry = {"registryId": account} if account else {}
    url = None
    try:
        ecr = boto3.session.Session().client("ecr", region_name=region)
        url = str(ecr.meta.endpoint_url)
        found = ecr.batch_get_image(
            repositoryName=name,
            imageIds=[{"imageTag": tag}],
            acceptedMediaTypes=IMAGE_MANIFEST_TYPES,
            **registry,
        )
        if not found.get("images"):
            raise ArtifactNotFound(f"no image {repository}:{tag} in ECR")
        source = found["images"][0]
        digest = str(source["imageId"]["imageDigest"])
        arguments = {
            "repositoryName": name,
            "imageManifest": source["imageManifest"],
            "imageTag": new_tag,
            "imageDigest": digest,
            **registry,
        }
        if source.get("imageManifestMediaType"):
            arguments["imageManifestMediaType"] = source["imageManifestMediaType"]
        try:
            put = ecr.put_image(**arguments)
        except Exception as error:
            if error_code(error)[0] == "ImageAlreadyExistsException":
                return digest  # the tag already names this image
            raise
    except Exception as error:
        if error_code(error)[0] == "RepositoryNotFoundException":
            raise ConfigError(
                f"no ECR repository {name!r} (aws ecr create-repository --repository-name {name})"
            ) from None
        raise translate(error, "ECR", url, f"retagging {repository}:{tag} as {new_tag}") from None
    new_digest = str(put["image"]["imageId"]["imageDigest"])
    if new_digest != digest:
        raise ModelciError(f"ECR stored {repository}:{new_tag} as {new_digest}, not {digest}")
    return digest


def pushed_registry(workspace: Workspace) -> str | None:
    """`[image].registry` when images are pushed there (set, and not `modelci.local`)."""
    registry = (workspace.project.image.registry or "").rstrip("/")
    return registry if registry and registry != DEFAULT_REGISTRY else None


def follow_image_alias(
    model: str, commit: str, alias: str, registry: str | None = None
) -> str | None:
    """On release: when images are pushed to a registry (`[image].registry`, else
    MODELCI_IMAGE_REGISTRY), give `<registry>/<model>:<sha12>` the tag `alias` too; None when
    no such image was pushed."""
    registry = (registry or os.environ.get(REGISTRY_VARIABLE, "")).rstrip("/")
    if not registry or registry == DEFAULT_REGISTRY:
        return None
    return retag_image(f"{registry}/{model}", commit[:12], alias, missing_ok=True)
