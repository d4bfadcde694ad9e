"""Archives unpack the same way on Pythons without tarfile's extraction filters (3.11.0-3.11.3,
Debian 12's system Python): plain files and folders come out, anything that would land or link
outside the destination, or a device file, is refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from modelci.train.artifacts import extract


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


@pytest.fixture(params=["filters", "no filters"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no filters":
        monkeypatch.delattr(tarfile, "data_filter")
    return str(request.param)


def test_plain_files_folders_and_inner_links_come_out(python: str, tmp_path: Path) -> None:
    path = _archive(
        tmp_path / "good.tar",
        (_info("model", tarfile.DIRTYPE, mode=0o755), b""),
        (_info("model/model.json", mode=0o4755), b'{"bias": 0.5}'),
        (_info("model/current.json", tarfile.SYMTYPE, link="model.json"), b""),
    )
    destination = tmp_path / "out"
    with tarfile.open(path) as archive:
        extract(archive, destination)
    assert (destination / "model/model.json").read_bytes() == b'{"bias": 0.5}'
    assert (destination / "model/current.json").read_bytes() == b'{"bias": 0.5}'
    assert (destination / "model/model.json").stat().st_mode & 0o4000 == 0  # no setuid


def test_an_absolute_name_lands_inside(python: str, tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "absolute.txt"
    path = _archive(tmp_path / "absolute.tar", (_info(str(absolute)), b"x"))
    destination = tmp_path / "out"
    with tarfile.open(path) as archive:
        extract(archive, destination)
    assert not absolute.exists()
    assert (destination / str(absolute).lstrip("/")).read_bytes() == b"x"


@pytest.mark.parametrize(
    "member",
    [
        _info("../escaped.txt"),
        _info("link", tarfile.SYMTYPE, link="../../outside"),
        _info("hard", tarfile.LNKTYPE, link="../outside"),
        _info("device", tarfile.CHRTYPE),
    ],
    ids=["dot-dot", "symlink out", "hardlink out", "device"],
)
def test_anything_outside_or_special_is_refused(
    python: str, member: tarfile.TarInfo, tmp_path: Path
) -> None:
    path = _archive(tmp_path / "bad.tar", (member, b"x" if member.isfile() else b""))
    destination = tmp_path / "out"
    destination.mkdir()
    with tarfile.open(path) as archive, pytest.raises(tarfile.TarError):
        extract(archive, destination)
    assert list(destination.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()
