"""Images: `latest` moves without an engine, by re-putting the image's manifest: on a real OCI
registry (docker-registry) and on ECR (the AWS API emulator). Building and pushing with a real
engine: test_image_flow.py."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx
import pytest

from modelci.envs import retag
from modelci.errors import ArtifactNotFound, ConfigError

ACCOUNT = "123456789012"  # the emulator's account
ECR = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"


# --- moving `latest` without an engine -------------------------------------------------------


def push_tiny_image(registry: str, repository: str, tag: str) -> str:
    """Push a minimal image (a config blob, one layer, an OCI image manifest) with plain HTTP
    calls, as an engine would; the manifest's digest."""
    base = f"http://{registry}/v2/{repository}"
    blobs: list[dict[str, Any]] = []
    for media_type, data in (
        (
            "application/vnd.oci.image.config.v1+json",
            b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
        ),
        ("application/vnd.oci.image.layer.v1.tar+gzip", os.urandom(512)),
    ):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = httpx.post(f"{base}/blobs/uploads/")
        assert started.status_code == 202
        location = httpx.URL(f"http://{registry}").join(started.headers["location"])
        done = httpx.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
        blobs.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blobs[0],
            "layers": blobs[1:],
        },
        indent=3,
    ).encode()
    put = httpx.put(
        f"{base}/manifests/{tag}",
        content=manifest,
        headers={"content-type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def manifest_of(registry: str, repository: str, tag: str) -> httpx.Response:
    return httpx.get(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
    )


@pytest.mark.oci
def test_retag_on_an_oci_registry(oci_registry: str) -> None:
    digest = push_tiny_image(oci_registry, "ml/tiny", "0123456789ab")
    moved = retag.retag_image(f"{oci_registry}/ml/tiny", "0123456789ab", "latest")
    assert moved == digest
    source = manifest_of(oci_registry, "ml/tiny", "0123456789ab")
    latest = manifest_of(oci_registry, "ml/tiny", "latest")
    assert latest.headers["docker-content-digest"] == digest
    assert latest.content == source.content  # the exact bytes, indentation and all

    with pytest.raises(ArtifactNotFound):
        retag.retag_image(f"{oci_registry}/ml/tiny", "ffffffffffff", "latest")
    assert (
        retag.retag_image(f"{oci_registry}/ml/tiny", "ffffffffffff", "latest", missing_ok=True)
        is None
    )


@pytest.mark.oci
def test_release_follows_the_image_registry(
    oci_registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "abcdef012345" + "0" * 28
    digest = push_tiny_image(oci_registry, "team/churn", commit[:12])
    assert retag.follow_image_alias("churn", commit, "latest") is None  # no registry set
    monkeypatch.setenv("MODELCI_IMAGE_REGISTRY", f"{oci_registry}/team")
    assert retag.follow_image_alias("churn", commit, "latest") == digest
    assert (
        manifest_of(oci_registry, "team/churn", "latest").headers["docker-content-digest"] == digest
    )
    # a version whose image was never pushed: nothing to move, and no failure
    assert retag.follow_image_alias("churn", "9" * 40, "latest") is None


@pytest.mark.aws
def test_retag_on_ecr(aws_env: str) -> None:
    import boto3

    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="ml/churn")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7,
                "digest": "sha256:" + "1" * 64,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 9,
                    "digest": "sha256:" + "2" * 64,
                }
            ],
        }
    )
    pushed = ecr.put_image(
        repositoryName="ml/churn", imageManifest=manifest, imageTag="0123456789ab"
    )["image"]["imageId"]["imageDigest"]

    moved = retag.retag_image(f"{ECR}/ml/churn", "0123456789ab", "latest")
    assert moved == pushed
    images = ecr.batch_get_image(
        repositoryName="ml/churn", imageIds=[{"imageTag": "latest"}, {"imageTag": "0123456789ab"}]
    )["images"]
    assert {image["imageId"]["imageDigest"] for image in images} == {pushed}
    assert all(image["imageManifest"] == manifest for image in images)
    # again: the tag already names the image
    assert retag.retag_image(f"{ECR}/ml/churn", "0123456789ab", "latest") == pushed

    with pytest.raises(ArtifactNotFound):
        retag.retag_image(f"{ECR}/ml/churn", "ffffffffffff", "latest")
    with pytest.raises(ConfigError, match="no ECR repository"):
        retag.retag_image(f"{ECR}/ml/absent", "0123456789ab", "latest")


@pytest.mark.aws
def test_retag_on_ecr_without_credentials(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID") as caught:
        retag.retag_image(f"{ECR}/ml/churn", "0123456789ab", "latest")
    assert caught.value.exit_code == 2


def test_ecr_is_told_by_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    assert retag.is_ecr(f"{ECR}/ml/churn")
    assert retag.is_ecr(f"{ACCOUNT}.dkr.ecr-fips.us-gov-west-1.amazonaws.com/x")
    assert not retag.is_ecr("ghcr.io/team/churn")
    monkeypatch.setenv("MODELCI_IMAGE_REGISTRY_KIND", "ecr")
    assert retag.is_ecr("ecr-proxy.internal/ml/churn")
