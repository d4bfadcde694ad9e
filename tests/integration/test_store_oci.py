"""The OCI store against a real registry (docker-registry on 127.0.0.1): blobs by digest,
versions as tagged OCI artifacts with annotations, aliases that keep the digest, auth from
the docker configuration, and clear errors."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
from pathlib import Path

import httpx
import pytest

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError, ModelciError
from modelci.oci import MANIFEST_TYPE, OciClient, docker_credentials
from modelci.store import open_store
from modelci.store.base import version_annotations
from modelci.store.oci import (
    ARTIFACT_TYPE,
    EMPTY_DIGEST,
    EMPTY_TYPE,
    LAYER_TYPE,
    OciStore,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.oci
_repositories = itertools.count()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(oci_registry: str, tmp_path: Path) -> OciStore:
    opened = open_store(f"oci://{oci_registry}/modelci/models{next(_repositories)}", tmp_path)
    assert isinstance(opened, OciStore)
    return opened


def test_round_trip_by_digest(store: OciStore, oci_registry: str, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    source = tmp_path / "model.tar.gz"
    source.write_bytes(data)
    stored = store.put_file(source)
    assert stored.sha256 == sha(data) and stored.size == len(data)
    assert stored.uri == f"{store.url}@sha256:{stored.sha256}"
    assert store.client.base == f"http://{oci_registry}"  # loopback: plain http

    # the blob is there under its OCI digest, and pinned by the tag sha256-<hex>
    blob = httpx.get(store.client.url(f"blobs/sha256:{stored.sha256}"))
    assert blob.status_code == 200 and blob.content == data
    pin = store.manifest(f"sha256-{stored.sha256}")
    assert pin is not None and pin.json()["layers"][0]["digest"] == f"sha256:{stored.sha256}"

    copy = store.get_file(stored.sha256, tmp_path / "out" / "copy.tar.gz")
    assert copy.read_bytes() == data
    assert [p.name for p in copy.parent.iterdir()] == ["copy.tar.gz"]
    assert store.get_bytes(stored.sha256) == data
    assert store.exists(stored.sha256) and not store.exists(sha(b"never"))
    assert store.get_bytes(store.put_bytes(b"log\n").sha256) == b"log\n"


def test_large_blob_goes_in_chunks(
    store: OciStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelci import oci

    monkeypatch.setattr(oci, "UPLOAD_CHUNK", 1024 * 1024)
    data = os.urandom(3 * 1024 * 1024 + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    stored = store.put_file(source)
    assert store.get_file(stored.sha256, tmp_path / "copy.bin").read_bytes() == data


def test_written_once(store: OciStore, tmp_path: Path) -> None:
    store.put_bytes(b"once")
    methods: list[str] = []
    store.client.http.event_hooks["request"].append(lambda r: methods.append(r.method))
    store.put_bytes(b"once")
    assert "PUT" not in methods and "POST" not in methods and "PATCH" not in methods


def test_version_artifact_tag_annotations_and_alias(store: OciStore, tmp_path: Path) -> None:
    stored = store.put_bytes(b"a model archive")
    annotations = version_annotations(
        "churn",
        "churn-0123456789ab",
        "0123456789ab" + "c" * 28,
        "f" * 64,
        {"accuracy": 0.91},
        stored.sha256,
    )
    store.tag_version(stored.sha256, "churn-0123456789ab", annotations)
    manifest = store.manifest("churn-0123456789ab")
    assert manifest is not None
    digest = manifest.digest
    assert manifest.media_type == MANIFEST_TYPE
    body = manifest.json()
    assert body["artifactType"] == ARTIFACT_TYPE
    assert body["config"]["mediaType"] == EMPTY_TYPE and body["config"]["digest"] == EMPTY_DIGEST
    [layer] = body["layers"]
    assert layer["mediaType"] == LAYER_TYPE
    assert layer["digest"] == f"sha256:{stored.sha256}" and layer["size"] == len(b"a model archive")
    assert layer["annotations"]["org.opencontainers.image.title"] == "model.tar.gz"
    assert body["annotations"]["ai.modelci.model"] == "churn"
    assert body["annotations"]["ai.modelci.version"] == "churn-0123456789ab"
    assert json.loads(body["annotations"]["ai.modelci.metrics"]) == {"accuracy": 0.91}
    # tagging again is a no-op with the same digest
    store.tag_version(stored.sha256, "churn-0123456789ab", annotations)
    assert store.manifest("churn-0123456789ab").digest == digest  # type: ignore[union-attr]

    moved = store.follow_alias("churn", "churn-0123456789ab", "latest")
    latest = store.manifest("churn-latest")
    assert moved == digest and latest is not None
    assert latest.digest == digest and latest.data == manifest.data

    # a second version; latest moves to it and keeps its digest
    other = store.put_bytes(b"a better model")
    store.tag_version(other.sha256, "churn-ba9876543210", {"ai.modelci.model": "churn"})
    second = store.manifest("churn-ba9876543210").digest  # type: ignore[union-attr]
    assert store.move_tag("churn-ba9876543210", "churn-latest") == second
    assert store.manifest("churn-latest").digest == second  # type: ignore[union-attr]
    assert store.manifest("churn-0123456789ab").digest == digest  # type: ignore[union-attr]


def test_tagging_an_absent_blob_or_moving_an_absent_tag(store: OciStore) -> None:
    with pytest.raises(ArtifactNotFound):
        store.tag_version(sha(b"absent"), "m-000000000000", {})
    with pytest.raises(ArtifactNotFound, match="no-such-tag"):
        store.move_tag("no-such-tag", "m-latest")


def test_corruption_and_absence(
    store: OciStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry checks digests on upload, so a tampered blob cannot be planted through the
    API; a transport that alters content in flight stands in for a damaged store."""
    stored = store.put_bytes(b"the real model")

    def fake_damage(response: httpx.Response) -> None:
        if "/blobs/" in response.request.url.path and response.request.method == "GET":
            response.stream = httpx.ByteStream(b"tampered")  # type: ignore[assignment]

    store.client.http.event_hooks["response"].append(fake_damage)
    destination = tmp_path / "out" / "m.tar.gz"
    with pytest.raises(ArtifactCorrupted, match=stored.uri) as caught:
        store.get_file(stored.sha256, destination)
    assert caught.value.exit_code == 1
    assert not destination.exists() and list(destination.parent.iterdir()) == []
    with pytest.raises(ArtifactCorrupted):
        store.get_bytes(stored.sha256)
    store.client.http.event_hooks["response"].clear()
    with pytest.raises(ArtifactNotFound, match=store.url):
        store.get_file(sha(b"absent"), tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_registry_that_does_not_answer(tmp_path: Path) -> None:
    port = free_port()
    store = OciStore(f"oci://127.0.0.1:{port}/models")
    with pytest.raises(ModelciError) as caught:
        store.put_bytes(b"x")
    assert type(caught.value) is ModelciError and caught.value.exit_code == 1
    assert f"http://127.0.0.1:{port}" in str(caught.value) and "does not answer" in str(
        caught.value
    )
    with pytest.raises(ModelciError, match="does not answer"):
        store.get_file(sha(b"x"), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_https_unless_loopback_or_insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OciClient("registry.example", "m").base == "https://registry.example"
    assert OciClient("localhost:5000", "m").base == "http://localhost:5000"
    assert OciClient("[::1]:5000", "m").base == "http://[::1]:5000"
    monkeypatch.setenv("MODELCI_OCI_INSECURE", "1")
    assert OciClient("registry.internal:5000", "m").base == "http://registry.internal:5000"


def test_bad_urls() -> None:
    for url in ("oci://host-only", "oci:///repo", "oci://h/Upper/Case"):
        with pytest.raises(ConfigError) as caught:
            OciStore(url)
        assert caught.value.exit_code == 2


def test_docker_config_credentials(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = isolated_home / ".docker"
    folder.mkdir()
    secret = base64.b64encode(b"robot:s3cret").decode()
    (folder / "config.json").write_text(
        json.dumps({"auths": {"https://registry.example": {"auth": secret}}})
    )
    assert docker_credentials("registry.example") == ("robot", "s3cret")
    assert docker_credentials("other.example") is None
    monkeypatch.setenv("DOCKER_CONFIG", str(isolated_home / "elsewhere"))
    assert docker_credentials("registry.example") is None


def test_basic_and_bearer_challenges(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The two challenges the distribution spec allows, answered from the docker login.
    A stand-in registry (a MockTransport) plays the server: docker-registry speaks Bearer
    only behind a token service we cannot run here."""
    folder = isolated_home / ".docker"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {"auths": {"fake-registry.example": {"auth": base64.b64encode(b"u:pw").decode()}}}
        )
    )
    seen: list[str | None] = []

    def fake_registry(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.url.host == "auth.example":
            assert request.headers["authorization"] == "Basic " + base64.b64encode(b"u:pw").decode()
            assert request.url.params["scope"] == "repository:m:pull"
            return httpx.Response(200, json={"token": "tok"})
        if request.headers.get("authorization") != "Bearer tok":
            return httpx.Response(
                401,
                headers={
                    "www-authenticate": (
                        'Bearer realm="https://auth.example/token",service="fake",'
                        'scope="repository:m:pull"'
                    )
                },
            )
        return httpx.Response(200, headers={"content-length": "3"})

    client = OciClient("fake-registry.example", "m")
    client._http = httpx.Client(transport=httpx.MockTransport(fake_registry))
    assert client.blob_size("sha256:" + "0" * 64) == 3
    assert seen == [None, "Basic dTpwdw==", "Bearer tok"]

    def fake_basic_registry(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") == "Basic dTpwdw==":
            return httpx.Response(404)
        return httpx.Response(401, headers={"www-authenticate": 'Basic realm="r"'})

    client = OciClient("fake-registry.example", "m")
    client._http = httpx.Client(transport=httpx.MockTransport(fake_basic_registry))
    assert client.blob_size("sha256:" + "0" * 64) is None

    client = OciClient("nobody.example", "m")  # no login for that host
    client._http = httpx.Client(transport=httpx.MockTransport(fake_basic_registry))
    with pytest.raises(ConfigError, match=r"docker login nobody\.example") as caught:
        client.blob_size("sha256:" + "0" * 64)
    assert caught.value.exit_code == 2
