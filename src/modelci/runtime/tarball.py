"""The one packer of folders into .tar.gz archives: model.tar.gz, SageMaker's
sourcedir.tar.gz and the model folder a Ray job sends back.

The same files pack to the same bytes on any machine: entries sorted, times zeroed (gzip's
too), owners zeroed and unnamed, modes normalised to 0755 for folders and executables and
0644 for other files. Standard library only: the Ray driver runs it in a model's environment.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Collection
from pathlib import Path
from typing import BinaryIO


def pack_into(
    folder: Path, out: BinaryIO, *, leave_out: Collection[str] = (), folders: bool = True
) -> None:
    """Write every file (and, with `folders`, folder) under `folder`, at the archive's root, to
    `out` as a reproducible .tar.gz; a path with a part named in `leave_out` is left out."""
    entries = sorted(
        p
        for p in folder.rglob("*")
        if (p.is_file() or (folders and p.is_dir()))
        and not any(part in leave_out for part in p.relative_to(folder).parts)
    )
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in entries:
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            else:
                info.size = path.stat().st_size
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                with path.open("rb") as handle:
                    archive.addfile(info, handle)


def pack(
    folder: Path, destination: Path, *, leave_out: Collection[str] = (), folders: bool = True
) -> Path:
    """`pack_into` a file at `destination`; that path."""
    with destination.open("wb") as out:
        pack_into(folder, out, leave_out=leave_out, folders=folders)
    return destination


def pack_bytes(folder: Path, *, leave_out: Collection[str] = ()) -> bytes:
    """`pack_into` memory; the archive's bytes."""
    buffer = io.BytesIO()
    pack_into(folder, buffer, leave_out=leave_out)
    return buffer.getvalue()
