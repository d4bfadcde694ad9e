"""The unpacked copies of artifacts: recorded when unpacked, and verified, with the stored
archive, on every use; nothing of a verdict kept."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from modelci.errors import ArtifactCorrupted, ArtifactNotFound
from modelci.store.local import LocalStore
from modelci.train.artifacts import pack
from modelci.train.unpacked import RECORD_SUFFIX, materialize, tree_digests, verify_copy


@pytest.fixture
def stored(tmp_path: Path) -> tuple[LocalStore, str]:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.json").write_text('{"bias": 0.5}')
    (model / "sub" / "vocab.txt").write_text("a\nb\n")
    os.symlink("sub/vocab.txt", model / "vocab.txt")
    store = LocalStore(tmp_path / "store")
    return store, store.put_file(pack(model, tmp_path / "model.tar.gz")).sha256


def test_tree_digests_name_files_links_and_folders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"a")
    os.symlink("sub/a", tmp_path / "link")
    assert tree_digests(tmp_path) == {
        "link": "-> sub/a",
        "sub": "/",
        "sub/a": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
    }


def test_a_copy_is_recorded_once_and_verified_on_every_use(
    stored: tuple[LocalStore, str], tmp_path: Path
) -> None:
    store, sha256 = stored
    cache = tmp_path / "cache"
    folder = materialize(store, sha256, cache, version="toy-1")
    assert folder == cache / sha256
    record = json.loads((cache / f"{sha256}{RECORD_SUFFIX}").read_text())
    assert record == {"tree": tree_digests(folder)}
    assert materialize(store, sha256, cache, version="toy-1") == folder  # verified, reused
    assert sorted(p.name for p in cache.iterdir()) == [sha256, f"{sha256}{RECORD_SUFFIX}"]


@pytest.mark.parametrize("change", ["changed", "added", "removed", "relinked"])
def test_a_changed_copy_is_refused_naming_version_and_file(
    stored: tuple[LocalStore, str], tmp_path: Path, change: str
) -> None:
    store, sha256 = stored
    cache = tmp_path / "cache"
    folder = materialize(store, sha256, cache)
    named = {
        "changed": "model.json",
        "added": "extra.py",
        "removed": "sub/vocab.txt",
        "relinked": "vocab.txt",
    }[change]
    original = (folder / "model.json").read_bytes()
    if change == "changed":
        (folder / "model.json").write_text('{"bias": 9.5}')
    elif change == "added":
        (folder / "extra.py").write_text("import os\n")
    elif change == "removed":
        (folder / "sub" / "vocab.txt").unlink()
    else:
        (folder / "vocab.txt").unlink()
        os.symlink("../../elsewhere", folder / "vocab.txt")

    with pytest.raises(ArtifactCorrupted) as caught:
        materialize(store, sha256, cache, version="toy-1")
    assert caught.value.file == str(folder / named)
    assert caught.value.message.startswith("version toy-1: the unpacked copy")
    assert named in caught.value.message and f"delete {folder}" in caught.value.message
    assert caught.value.exit_code == 1

    if change == "changed":  # the original bytes back: accepted at once
        (folder / "model.json").write_bytes(original)
        assert materialize(store, sha256, cache, version="toy-1") == folder


def test_a_changed_archive_is_refused_although_a_copy_is_cached(
    stored: tuple[LocalStore, str], tmp_path: Path
) -> None:
    store, sha256 = stored
    cache = tmp_path / "cache"
    materialize(store, sha256, cache)
    path = store.path_for(sha256)
    original = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))

    with pytest.raises(ArtifactCorrupted) as caught:
        materialize(store, sha256, cache, version="toy-1")
    assert caught.value.file == str(path) and "version toy-1" in caught.value.message

    path.write_bytes(original)
    assert materialize(store, sha256, cache, version="toy-1").is_dir()

    path.unlink()
    with pytest.raises(ArtifactNotFound, match="version toy-1"):
        materialize(store, sha256, cache, version="toy-1")


@pytest.mark.parametrize("record", ["missing", "damaged"])
def test_a_copy_without_a_good_record_is_checked_against_the_archive(
    stored: tuple[LocalStore, str], tmp_path: Path, record: str
) -> None:
    """A copy cached before trees were recorded (or whose record is damaged) is checked against
    the tree unpacked again from the verified archive: kept when it matches, refused when not."""
    store, sha256 = stored
    cache = tmp_path / "cache"
    folder = materialize(store, sha256, cache)
    path = cache / f"{sha256}{RECORD_SUFFIX}"
    expected = path.read_text()
    if record == "missing":
        path.unlink()
    else:
        path.write_text('{"tree": ')
    assert materialize(store, sha256, cache) == folder
    assert path.read_text() == expected
    assert sorted(p.name for p in cache.iterdir()) == [sha256, path.name]  # no scratch left

    path.unlink()
    (folder / "model.json").write_text('{"bias": 9.5}')
    with pytest.raises(ArtifactCorrupted, match=r"model\.json"):
        materialize(store, sha256, cache)


def test_a_copy_of_the_copy_is_checked_against_the_same_record(
    stored: tuple[LocalStore, str], tmp_path: Path
) -> None:
    store, sha256 = stored
    cache = tmp_path / "cache"
    copy = tmp_path / "app" / "model"
    shutil.copytree(materialize(store, sha256, cache), copy, symlinks=True)
    verify_copy(copy, sha256, cache, version="toy-1")

    (copy / "model.json").write_text('{"bias": 9.5}')
    with pytest.raises(ArtifactCorrupted) as caught:
        verify_copy(copy, sha256, cache, version="toy-1")
    assert caught.value.file == str(copy / "model.json")
    assert "version toy-1" in caught.value.message


def test_local_store_verify(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    sha256 = store.put_bytes(b"the trained model").sha256
    store.verify(sha256)
    path = store.path_for(sha256)
    path.chmod(0o644)
    path.write_bytes(b"the trained modeL")
    with pytest.raises(ArtifactCorrupted) as caught:
        store.verify(sha256)
    assert caught.value.file == str(path)
