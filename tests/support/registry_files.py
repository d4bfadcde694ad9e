"""Registry files as the fault tests break them: a registry holding one version, and files or
folders made read-only for real. Tests run as root, whom permission bits do not stop: an
immutable attribute (`chattr +i`, on ext4 and most Linux file systems) refuses every write
with EPERM, root's too."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelci.registry import open_registry
from modelci.registry.base import VersionRecord
from tests.support.repos import GitRepo

REGISTRY = "sqlite:///.modelci/registry.db"
VERSION = "toy-000000000001"


def registry_with_a_version(repo: GitRepo) -> Path:
    """The repository's SQLite registry holding version VERSION of model toy, seen once (so
    that it is marked as made); its file."""
    record = VersionRecord(version=VERSION, model="toy", commit="0" * 40)
    with open_registry(REGISTRY, repo.root) as registry:
        registry.add_version(record)
    with open_registry(REGISTRY, repo.root) as registry:  # a registry seen is marked
        assert registry.get_version(record.version) is not None
    return repo.root / ".modelci/registry.db"


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """`paths` immutable for the block (a folder: nothing in it can be made, removed or
    renamed), writable again after it whatever happens; skips the test where the file system
    has no immutable attribute."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed: no way to make a file read-only for root")
    made: list[Path] = []
    try:
        for path in paths:
            done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"chattr +i {path} failed: {done.stderr.strip()}")
            made.append(path)
        yield
    finally:
        for path in made:
            subprocess.run([chattr, "-i", str(path)], check=True)
