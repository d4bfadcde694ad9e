"""model.tar.gz, packed as SageMaker does (the model folder's files at the archive's root),
byte for byte the same for the same files: sorted entries, no times, owners or modes that
vary between machines."""

from __future__ import annotations

import gzip
import os
import re
import tarfile
from pathlib import Path

from modelci.errors import ModelciError


def pack(folder: Path, destination: Path) -> Path:
    """Pack every file under `folder` into `destination` (a .tar.gz) reproducibly."""
    entries = sorted(p for p in folder.rglob("*") if p.is_file() or p.is_dir())
    with destination.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as archive:
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
    return destination


def unpack(archive_path: Path, destination: Path) -> Path:
    """Unpack a model.tar.gz safely (no absolute paths, links out or device files)."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ModelciError(f"cannot unpack {archive_path}: {exc}") from exc
    return destination


def parse_metrics(log: str, patterns: dict[str, str]) -> dict[str, float]:
    """Each metric's value: the last match of its regex over the log (SageMaker's metric
    definitions give a series; the final value is the model's)."""
    metrics: dict[str, float] = {}
    for name, pattern in patterns.items():
        matches = re.findall(pattern, log)
        for match in reversed(matches):
            value = match[0] if isinstance(match, tuple) else match
            try:
                metrics[name] = float(value)
                break
            except ValueError:
                continue
    return metrics
