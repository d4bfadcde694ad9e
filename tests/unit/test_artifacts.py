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
