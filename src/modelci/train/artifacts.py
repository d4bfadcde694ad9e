"""model.tar.gz, packed as SageMaker does (the model folder's files at the archive's root),
byte for byte the same for the same files (`tarball.py`); unpacked safely; metrics
parsed from a job's log."""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path

from modelci.errors import ModelciError
from modelci.store.base import Store
from modelci.train import tarball


def pack(folder: Path, destination: Path) -> Path:
    """Pack every file under `folder` into `destination` (a .tar.gz) reproducibly."""
    return tarball.pack(folder, destination)


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


def materialize(store: Store, sha256: str, cache: Path) -> Path:
    """The model folder of an artifact, unpacked once under `cache/<sha256>/` (atomically, so
    a folder that exists is complete) and shared by every worker and test that needs it."""
    import shutil
    import tempfile

    target = cache / sha256
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as scratch:
        archive = store.get_file(sha256, Path(scratch) / "model.tar.gz")
        unpacked = unpack(archive, Path(scratch) / "model")
        try:
            os.rename(unpacked, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(unpacked, ignore_errors=True)  # another process won the race
    return target
