"""model.tar.gz, packed as SageMaker does (the model folder's files at the archive's root),
byte for byte the same for the same files (`tarball.py`); unpacked safely; metrics
parsed from a job's log. The verified unpacked copies that servers and tests read are
`unpacked.py`'s."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

from modelci.errors import ModelciError
from modelci.runtime import tarball


def pack(folder: Path, destination: Path) -> Path:
    """Pack every file under `folder` into `destination` (a .tar.gz) reproducibly."""
    return tarball.pack(folder, destination)


def unpack(archive_path: Path, destination: Path) -> Path:
    """Unpack a model.tar.gz safely (no absolute paths, links out or device files)."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            extract(archive, destination)
    except (tarfile.TarError, OSError) as exc:
        raise ModelciError(f"cannot unpack {archive_path}: {exc}") from exc
    return destination


def extract(archive: tarfile.TarFile, destination: Path) -> None:
    """Extract with tarfile's "data" filter: nothing lands or links outside `destination`, no
    device files, no setuid bits. Python 3.11.0-3.11.3 (Debian 12's is 3.11.2) have no
    filters: there the same refusals are made here."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(destination, filter="data")
        return
    root = destination.resolve()
    members = archive.getmembers()
    for member in members:
        member.name = member.name.lstrip("/")  # as the filter does: absolute names land inside
        target = (root / member.name).resolve()
        linked = target
        if member.issym():
            linked = (target.parent / member.linkname).resolve()
        elif member.islnk():
            linked = (root / member.linkname).resolve()
        plain = member.isfile() or member.isdir() or member.issym() or member.islnk()
        if not plain or not (target.is_relative_to(root) and linked.is_relative_to(root)):
            raise tarfile.TarError(f"{member.name!r} is not a plain file inside {destination}")
        member.mode &= 0o755
    archive.extractall(destination, members=members)


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
