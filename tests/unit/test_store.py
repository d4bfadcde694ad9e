"""The local artifact store and the scheme table that chooses a store."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tracemalloc
from pathlib import Path

import pytest

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError
from modelci.store import open_store
from modelci.store.local import CHUNK_SIZE, LocalStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def objects(store: LocalStore) -> list[Path]:
    """Every object file in the store."""
    return sorted(p for p in (store.root / "sha256").rglob("*") if p.is_file())


def leftovers(store: LocalStore) -> list[Path]:
    """Temporary files the store left behind."""
    tmp = store.root / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


# -- round trip and layout -------------------------------------------------------------------


def test_put_bytes_round_trip_and_layout(store: LocalStore, tmp_path: Path) -> None:
    data = b"model weights\x00\x01\x02"
    digest = sha(data)

    stored = store.put_bytes(data)

    assert stored.sha256 == digest
    assert stored.size == len(data)
    expected_path = store.root / "sha256" / digest[:2] / digest
    assert objects(store) == [expected_path]
    assert stored.uri == expected_path.as_uri()
    assert stored.uri.startswith("file:///")
    assert store.uri_for(digest) == stored.uri
    assert store.exists(digest)
    assert store.get_bytes(digest) == data
    out = store.get_file(digest, tmp_path / "out" / "model.bin")
    assert out == tmp_path / "out" / "model.bin"
    assert out.read_bytes() == data
    assert leftovers(store) == []
    assert [p.name for p in out.parent.iterdir()] == ["model.bin"]


def test_put_file_round_trip(store: LocalStore, tmp_path: Path) -> None:
    source = tmp_path / "model.tar.gz"
    source.write_bytes(os.urandom(3 * CHUNK_SIZE + 17))  # several chunks and a ragged end

    stored = store.put_file(source)

    assert stored.sha256 == sha(source.read_bytes())
    assert stored.size == source.stat().st_size
    assert store.get_file(stored.sha256, tmp_path / "copy").read_bytes() == source.read_bytes()


def test_empty_content(store: LocalStore) -> None:
    stored = store.put_bytes(b"")
    assert stored.sha256 == sha(b"")
    assert stored.size == 0
    assert store.get_bytes(stored.sha256) == b""


def test_stored_objects_are_read_only(store: LocalStore) -> None:
    if sys.platform == "win32":
        pytest.skip("mode bits mean little on Windows")
    stored = store.put_bytes(b"write once")
    mode = stat.S_IMODE(store.path_for(stored.sha256).stat().st_mode)
    assert mode == 0o444


def test_get_file_replaces_an_existing_destination(store: LocalStore, tmp_path: Path) -> None:
    destination = tmp_path / "model.joblib"
    destination.write_bytes(b"an older model")
    stored = store.put_bytes(b"the newer model")
    store.get_file(stored.sha256, destination)
    assert destination.read_bytes() == b"the newer model"


# -- dedup -----------------------------------------------------------------------------------


def test_same_content_twice_is_stored_once(store: LocalStore, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"same content")

    first = store.put_file(source)
    second = store.put_bytes(b"same content")
    other = store.put_bytes(b"other content")

    assert first == second
    assert other.sha256 != first.sha256
    assert objects(store) == sorted([store.path_for(first.sha256), store.path_for(other.sha256)])
    assert leftovers(store) == []


def test_dedup_keeps_the_existing_object(store: LocalStore) -> None:
    first = store.put_bytes(b"same content")
    path = store.path_for(first.sha256)
    inode = path.stat().st_ino
    store.put_bytes(b"same content")
    assert path.stat().st_ino == inode  # not rewritten


def test_put_heals_a_truncated_object(store: LocalStore) -> None:
    data = b"0123456789" * 100
    stored = store.put_bytes(data)
    path = store.path_for(stored.sha256)
    path.chmod(0o644)
    path.write_bytes(data[:10])  # a damaged object, e.g. a disk filled mid-copy by hand

    store.put_bytes(data)

    assert store.get_bytes(stored.sha256) == data


# -- atomicity -------------------------------------------------------------------------------


class FailingReader:
    """A stream that yields some chunks, then fails like a dropped network read."""

    def __init__(self, good_chunks: int) -> None:
        self.left = good_chunks

    def read(self, size: int = -1) -> bytes:
        if self.left == 0:
            raise OSError("connection reset while reading the artifact")
        self.left -= 1
        return b"x" * CHUNK_SIZE


def test_failed_write_leaves_nothing(store: LocalStore) -> None:
    with pytest.raises(OSError, match="connection reset"):
        store.put_stream(FailingReader(good_chunks=3))  # type: ignore[arg-type]

    assert objects(store) == []
    assert leftovers(store) == []
    # The content it was writing is not half-present under its would-be digest either.
    assert not store.exists(sha(b"x" * CHUNK_SIZE * 3))


def test_failed_rename_leaves_no_partial_object(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr("modelci.store.local.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk vanished"):
        store.put_bytes(b"content")
    monkeypatch.undo()

    assert objects(store) == []
    assert leftovers(store) == []
    assert not store.exists(sha(b"content"))


def test_failed_get_file_keeps_the_old_destination(store: LocalStore, tmp_path: Path) -> None:
    stored = store.put_bytes(b"good content")
    path = store.path_for(stored.sha256)
    path.chmod(0o644)
    path.write_bytes(b"bad content!")
    destination = tmp_path / "dest" / "model.bin"
    destination.parent.mkdir()
    destination.write_bytes(b"previous model")

    with pytest.raises(ArtifactCorrupted):
        store.get_file(stored.sha256, destination)

    assert destination.read_bytes() == b"previous model"
    assert [p.name for p in destination.parent.iterdir()] == ["model.bin"]


# -- corruption, missing and bad digests ------------------------------------------------------


@pytest.mark.parametrize("read", ["get_bytes", "get_file"])
def test_changed_object_is_refused_and_named(store: LocalStore, tmp_path: Path, read: str) -> None:
    stored = store.put_bytes(b"the trained model")
    path = store.path_for(stored.sha256)
    path.chmod(0o644)
    path.write_bytes(b"the trained modeL")  # one byte changed, same size

    with pytest.raises(ArtifactCorrupted) as caught:
        if read == "get_bytes":
            store.get_bytes(stored.sha256)
        else:
            store.get_file(stored.sha256, tmp_path / "out" / "model.bin")

    assert str(path) in str(caught.value)
    assert caught.value.file == str(path)
    assert sha(b"the trained modeL") in str(caught.value)
    assert caught.value.exit_code == 1
    if read == "get_file":
        assert list((tmp_path / "out").iterdir()) == []  # no copy, no temporary file


def test_missing_digest(store: LocalStore, tmp_path: Path) -> None:
    store.put_bytes(b"something else")
    missing = sha(b"never stored")

    assert not store.exists(missing)
    with pytest.raises(ArtifactNotFound, match=missing):
        store.get_bytes(missing)
    with pytest.raises(ArtifactNotFound, match=missing):
        store.get_file(missing, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def test_missing_digest_in_a_store_never_written(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "nothing-here")
    with pytest.raises(ArtifactNotFound):
        store.get_bytes(sha(b"x"))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "A" * 64,  # uppercase
        "g" * 64,
        "a" * 63,
        "a" * 65,
        "../" + "a" * 61,  # a path, not a digest
        "sha256:" + "a" * 64,
    ],
)
def test_bad_digest_string(store: LocalStore, tmp_path: Path, bad: str) -> None:
    for call in (
        lambda: store.get_bytes(bad),
        lambda: store.get_file(bad, tmp_path / "out"),
        lambda: store.exists(bad),
        lambda: store.uri_for(bad),
    ):
        with pytest.raises(ConfigError, match="sha256") as caught:
            call()
        assert caught.value.exit_code == 2


# -- large content is streamed ----------------------------------------------------------------


def test_large_file_is_streamed(store: LocalStore, tmp_path: Path) -> None:
    size = 20 * 1024 * 1024
    source = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as out:
        for i in range(size // CHUNK_SIZE):
            block = bytes([i % 251]) * CHUNK_SIZE
            digest.update(block)
            out.write(block)

    tracemalloc.start()
    try:
        stored = store.put_file(source)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.get_file(stored.sha256, tmp_path / "big.copy")
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.sha256 == digest.hexdigest()
    assert stored.size == size
    # Reading the file whole would allocate 20 MB; a few chunks is the budget.
    assert put_peak < 4 * CHUNK_SIZE
    assert get_peak < 4 * CHUNK_SIZE
    assert (tmp_path / "big.copy").stat().st_size == size
    with open(tmp_path / "big.copy", "rb") as copy:
        assert hashlib.file_digest(copy, "sha256").hexdigest() == stored.sha256


def test_a_folder_store_names_no_versions_and_no_aliases(store: LocalStore) -> None:
    stored = store.put_bytes(b"a model")
    before = sorted(p for p in store.root.rglob("*"))
    assert store.tag_version(stored.sha256, "churn-0123456789ab", {"a": "b"}) is None
    assert store.follow_alias("churn", "churn-0123456789ab", "latest") is None
    assert sorted(p for p in store.root.rglob("*")) == before


# -- open_store ------------------------------------------------------------------------------


def test_open_store_relative_path_is_under_the_repository(tmp_path: Path) -> None:
    store = open_store(".modelci/artifacts", tmp_path)
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / ".modelci" / "artifacts"


def test_open_store_absolute_path_and_file_url(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    by_path = open_store(str(elsewhere), tmp_path / "repo")
    by_url = open_store(elsewhere.as_uri(), tmp_path / "repo")
    assert isinstance(by_path, LocalStore)
    assert isinstance(by_url, LocalStore)
    assert by_path.root == elsewhere
    assert by_url.root == elsewhere
    stored = by_url.put_bytes(b"shared")
    assert stored.uri.startswith(elsewhere.as_uri() + "/sha256/")


def test_open_store_file_url_with_a_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absolute path") as caught:
        open_store("file://relative/folder", tmp_path)
    assert caught.value.key == "store.url"


@pytest.mark.parametrize(
    ("url", "kind"),
    [("s3://bucket/prefix", "S3Store"), ("oci://registry.example/models", "OciStore")],
)
def test_open_store_remote_stores_open_without_a_connection(
    tmp_path: Path, url: str, kind: str
) -> None:
    store = open_store(url, tmp_path)  # no request is made until the store is used
    assert type(store).__name__ == kind
    assert store.uri_for("0" * 64).startswith(url)


@pytest.mark.parametrize("url", ["s3://", "oci://registry.example", "oci:///models"])
def test_open_store_remote_url_without_its_parts(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url, tmp_path)
    assert caught.value.key == "store.url"
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("url", ["gs://bucket/prefix", "HTTP://example.com/x"])
def test_open_store_unknown_scheme_lists_the_known_ones(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url, tmp_path)
    message = str(caught.value)
    assert caught.value.key == "store.url"
    assert message.startswith("store.url: unknown store scheme")
    for known in ("file://", "s3://", "oci://"):
        assert known in message
