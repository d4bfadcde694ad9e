"""The S3 store against the AWS API emulator (moto_server on 127.0.0.1): round trips, write
once, digests checked on read, multipart, and clear errors for what is misconfigured."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError, ModelciError
from modelci.store import open_store
from modelci.store.s3 import S3Store
from tests.support.ports import free_port
from tests.support.servers import SECRET_ACCESS_KEY

pytestmark = pytest.mark.aws


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def count_calls(store: S3Store) -> Counter[str]:
    """A counter of the S3 operations the store's client makes from now on."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    store.client.meta.events.register("before-call.s3", count)
    return calls


def s3() -> Any:
    """A plain client, acting behind the store's back."""
    import boto3

    return boto3.client("s3")


def test_round_trip_and_uri(s3_bucket: str, tmp_path: Path) -> None:
    store = open_store(f"s3://{s3_bucket}/models/team", tmp_path)
    assert isinstance(store, S3Store)
    data = os.urandom(100_000)
    source = tmp_path / "model.tar.gz"
    source.write_bytes(data)

    stored = store.put_file(source)
    assert stored.sha256 == sha(data) and stored.size == len(data)
    key = f"models/team/sha256/{stored.sha256[:2]}/{stored.sha256}"
    assert stored.uri == f"s3://{s3_bucket}/{key}"
    head = s3().head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["Metadata"] == {"sha256": stored.sha256}

    copy = store.get_file(stored.sha256, tmp_path / "out" / "copy.tar.gz")
    assert copy.read_bytes() == data
    assert [p.name for p in copy.parent.iterdir()] == ["copy.tar.gz"]  # no temporary left
    assert store.get_bytes(stored.sha256) == data
    assert store.exists(stored.sha256)
    assert not store.exists(sha(b"never stored"))

    small = store.put_bytes(b"log line\n")
    assert store.get_bytes(small.sha256) == b"log line\n"


def test_bucket_root_without_prefix(s3_bucket: str, tmp_path: Path) -> None:
    store = S3Store(f"s3://{s3_bucket}")
    stored = store.put_bytes(b"at the root")
    assert stored.uri == f"s3://{s3_bucket}/sha256/{stored.sha256[:2]}/{stored.sha256}"
    assert store.get_bytes(stored.sha256) == b"at the root"


def test_written_once(s3_bucket: str, tmp_path: Path) -> None:
    store = S3Store(f"s3://{s3_bucket}/p")
    source = tmp_path / "a.bin"
    source.write_bytes(b"same content" * 1000)
    first = store.put_file(source)
    calls = count_calls(store)
    again = store.put_file(source)
    assert again == first
    assert calls["HeadObject"] == 1
    assert calls["PutObject"] == calls["CreateMultipartUpload"] == 0
    store.put_bytes(b"same content" * 1000)
    assert calls["PutObject"] == 0


def test_a_write_never_replaces_an_object(s3_bucket: str, tmp_path: Path) -> None:
    """Even past the HEAD check (two writers racing), the upload is conditional."""
    store = S3Store(f"s3://{s3_bucket}/p")
    stored = store.put_bytes(b"first")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        store.client.put_object(Bucket=s3_bucket, Key=store.key_for(stored.sha256), Body=b"other")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    # the racing writer that lost: it finds the object there and reports success
    source = tmp_path / "first"
    source.write_bytes(b"first")
    store._upload(source, stored.sha256)
    assert store.get_bytes(stored.sha256) == b"first"


def test_multipart_for_a_large_file(s3_bucket: str, tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    mib = 1024 * 1024
    store = S3Store(
        f"s3://{s3_bucket}/big",
        transfer_config=TransferConfig(
            multipart_threshold=5 * mib, multipart_chunksize=5 * mib, max_concurrency=4
        ),
    )
    data = os.urandom(20 * mib)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    calls = count_calls(store)
    stored = store.put_file(source)
    assert calls["CreateMultipartUpload"] == 1 and calls["UploadPart"] == 4
    assert calls["CompleteMultipartUpload"] == 1 and calls["PutObject"] == 0
    assert s3().head_object(Bucket=s3_bucket, Key=store.key_for(stored.sha256))["Metadata"] == {
        "sha256": stored.sha256
    }
    copy = store.get_file(stored.sha256, tmp_path / "copy.bin")
    assert sha(copy.read_bytes()) == stored.sha256
    # a second put of the large file uploads nothing
    assert store.put_file(source) == stored
    assert calls["CreateMultipartUpload"] == 1


def test_corruption_is_detected_on_every_read(s3_bucket: str, tmp_path: Path) -> None:
    store = S3Store(f"s3://{s3_bucket}/p")
    stored = store.put_bytes(b"the real model")
    s3().put_object(Bucket=s3_bucket, Key=store.key_for(stored.sha256), Body=b"tampered")
    destination = tmp_path / "out" / "model.tar.gz"
    with pytest.raises(ArtifactCorrupted) as caught:
        store.get_file(stored.sha256, destination)
    assert stored.uri in str(caught.value)
    assert caught.value.exit_code == 1
    assert not destination.exists() and list(destination.parent.iterdir()) == []
    with pytest.raises(ArtifactCorrupted, match=stored.uri):
        store.get_bytes(stored.sha256)


def test_missing_artifact(s3_bucket: str, tmp_path: Path) -> None:
    store = S3Store(f"s3://{s3_bucket}/p")
    with pytest.raises(ArtifactNotFound, match=f"s3://{s3_bucket}/p"):
        store.get_file(sha(b"absent"), tmp_path / "x")
    with pytest.raises(ArtifactNotFound):
        store.get_bytes(sha(b"absent"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("operation", ["put", "get", "exists"])
def test_missing_bucket_is_a_configuration_error(
    aws_env: str, tmp_path: Path, operation: str
) -> None:
    store = S3Store("s3://no-such-bucket-here/models")
    action: dict[str, Callable[[], object]] = {
        "put": lambda: store.put_bytes(b"x"),
        "get": lambda: store.get_file(sha(b"x"), tmp_path / "x"),
        "exists": lambda: store.exists(sha(b"x")),
    }
    with pytest.raises(ConfigError) as caught:
        action[operation]()
    assert caught.value.exit_code == 2
    assert caught.value.key == "store.url"
    assert "'no-such-bucket-here' does not exist" in str(caught.value)
    assert aws_env in str(caught.value)  # the endpoint it asked


def test_missing_credentials(aws_env: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = S3Store(f"s3://{s3_bucket}/p")
    with pytest.raises(ConfigError) as caught:
        store.put_bytes(b"x")
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert f"s3://{s3_bucket}/p" in message
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_PROFILE" in message


def test_wrong_credentials(aws_env: str, s3_bucket: str) -> None:
    """The emulator accepts any key; what it refuses is a signature it cannot match when
    told to check. Here: the messages of any refusal carry no secret."""
    store = S3Store(f"s3://{s3_bucket}/p")
    error = store._translate(_client_error("InvalidAccessKeyId", 403), "write to")
    assert isinstance(error, ConfigError) and "AWS_ACCESS_KEY_ID" in str(error)
    assert SECRET_ACCESS_KEY not in str(error)


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": code, "Message": "refused"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutObject",
    )


def test_unreachable_endpoint_is_a_failure_naming_it(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = S3Store("s3://some-bucket/p")
    with pytest.raises(ModelciError) as caught:
        store.put_bytes(b"x")
    assert type(caught.value) is ModelciError and caught.value.exit_code == 1
    assert dead in str(caught.value) and "s3://some-bucket/p" in str(caught.value)


def test_endpoint_for_s3_alone(
    aws_env: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL for S3, as the SDK has it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store = S3Store(f"s3://{s3_bucket}/p")
    assert store.endpoint == aws_env
    assert store.get_bytes(store.put_bytes(b"via the S3 endpoint").sha256)


def test_bad_urls() -> None:
    for url in ("s3://", "s3:///prefix", "s3://bucket/p?x=1"):
        with pytest.raises(ConfigError) as caught:
            S3Store(url)
        assert caught.value.key == "store.url"
    with pytest.raises(ConfigError):
        S3Store("s3://bucket/p").uri_for("not-a-digest")


def test_named_files_for_data_capture(s3_bucket: str, tmp_path: Path) -> None:
    store = open_store(f"s3://{s3_bucket}/team", tmp_path)
    names = [
        "capture/churn/churn-abc/2026/12/03/01/a.jsonl",
        "capture/churn/churn-abc/2026/12/03/02/b.jsonl",
        "capture/churn-staging/churn-abc/2026/12/03/01/c.jsonl",
    ]
    for index, name in enumerate(names):
        uri = store.put_named(name, f"line {index}\n".encode())
        assert uri == f"s3://{s3_bucket}/team/{name}"
    # one endpoint's folder, not its namesake's with a longer name
    assert store.list_named("capture/churn") == names[:2]
    assert store.get_named(names[1]) == b"line 1\n"
    assert s3().get_object(Bucket=s3_bucket, Key=f"team/{names[2]}")["Body"].read() == b"line 2\n"
    with pytest.raises(ArtifactNotFound):
        store.get_named("capture/churn/none.jsonl")
    with pytest.raises(ConfigError):
        store.put_named("../outside", b"x")
