"""model.tar.gz packing and metric parsing."""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
from pathlib import Path

from modelci.train.artifacts import pack, parse_metrics, unpack


def make_model(folder: Path) -> None:
    (folder / "sub").mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"\x00weights")
    (folder / "sub" / "vocab.txt").write_text("a\nb\n")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pack_is_reproducible_across_times_and_folders(tmp_path: Path) -> None:
    make_model(tmp_path / "one")
    make_model(tmp_path / "two")
    os.utime(tmp_path / "two" / "model.joblib", (time.time() - 3600, time.time() - 3600))
    first = pack(tmp_path / "one", tmp_path / "one.tar.gz")
    second = pack(tmp_path / "two", tmp_path / "two.tar.gz")
    assert digest(first) == digest(second)
    (tmp_path / "two" / "model.joblib").write_bytes(b"\x00other")
    assert digest(pack(tmp_path / "two", tmp_path / "three.tar.gz")) != digest(first)


def test_files_sit_at_the_archive_root_as_on_sagemaker(tmp_path: Path) -> None:
    make_model(tmp_path / "m")
    archive = pack(tmp_path / "m", tmp_path / "model.tar.gz")
    with tarfile.open(archive) as opened:
        assert sorted(opened.getnames()) == ["model.joblib", "sub", "sub/vocab.txt"]
    out = unpack(archive, tmp_path / "out")
    assert (out / "sub" / "vocab.txt").read_text() == "a\nb\n"


def test_metrics_take_the_last_value(tmp_path: Path) -> None:
    log = "epoch 1 loss=0.9 acc=0.5\nepoch 2 loss=0.4 acc=0.8\nacc=oops\n"
    assert parse_metrics(
        log, {"loss": r"loss=([0-9.]+)", "acc": r"acc=([0-9.]+)", "missing": r"f1=([0-9.]+)"}
    ) == {"loss": 0.4, "acc": 0.8}


def test_the_one_packer_is_byte_identical_for_every_archive(tmp_path: Path) -> None:
    """model.tar.gz, SageMaker's sourcedir.tar.gz and the Ray driver's model archive come
    from one packer: the same files give the same bytes whatever their times, modes
    (beyond executable or not) and folder; the source archive leaves caches out."""
    from modelci.runtime.ray_driver import pack_bytes
    from modelci.train.sagemaker import pack_source

    make_model(tmp_path / "one")
    make_model(tmp_path / "two")
    old = time.time() - 86400
    for path in (tmp_path / "two").rglob("*"):
        os.utime(path, (old, old))
    (tmp_path / "one" / "model.joblib").chmod(0o600)  # only "executable or not" is kept
    (tmp_path / "two" / "model.joblib").chmod(0o664)
    (tmp_path / "two" / "__pycache__").mkdir()
    (tmp_path / "two" / "__pycache__" / "x.pyc").write_bytes(b"cache")

    one = pack(tmp_path / "one", tmp_path / "one.tar.gz").read_bytes()
    assert pack_bytes(tmp_path / "one") == one
    (tmp_path / "two" / "__pycache__").rename(tmp_path / "cache")  # model/ keeps every file
    assert pack(tmp_path / "two", tmp_path / "two.tar.gz").read_bytes() == one
    assert pack_bytes(tmp_path / "two") == one
    (tmp_path / "cache").rename(tmp_path / "two" / "__pycache__")
    source = pack_source(tmp_path / "one", tmp_path / "src1.tar.gz").read_bytes()
    assert pack_source(tmp_path / "two", tmp_path / "src2.tar.gz").read_bytes() == source
    with tarfile.open(tmp_path / "one.tar.gz") as opened:
        assert {(m.name, m.mode, m.mtime, m.uid, m.uname) for m in opened.getmembers()} == {
            ("model.joblib", 0o644, 0, 0, ""),
            ("sub", 0o755, 0, 0, ""),
            ("sub/vocab.txt", 0o644, 0, 0, ""),
        }
