"""The unpacked copies of artifacts (`.modelci/models/<sha256>/`) that version servers, tests
and deploys read, verified before every use.

A copy is unpacked once from the store's verified archive, and the digests of the tree it
unpacked to are recorded beside it (`<sha256>.tree.json`). Each use then re-verifies the
stored archive (`Store.verify`: a local store re-hashes it) and the copy against that record,
so a changed byte in either is refused, naming the version and the file. Nothing is cached of
a verdict: the original bytes put back are accepted again at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError
from modelci.store.base import Store

if TYPE_CHECKING:
    from modelci.registry.base import VersionRecord
    from modelci.workspace import Workspace

RECORD_SUFFIX = ".tree.json"
SHOWN = 3  # differences named in a message; the rest are counted


def tree_digests(folder: Path) -> dict[str, str]:
    """Every entry under `folder` by its relative path, sorted: a file's sha256, a symbolic
    link's `-> target` (never followed), a folder's `/`, anything else `?`."""
    entries: dict[str, str] = {}
    for current, folders, files in os.walk(folder):
        base = Path(current)
        for name in [*folders, *files]:
            path = base / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                entries[relative] = "-> " + os.readlink(path)
            elif path.is_dir():
                entries[relative] = "/"
            elif path.is_file():
                with open(path, "rb") as stream:
                    entries[relative] = hashlib.file_digest(stream, "sha256").hexdigest()
            else:
                entries[relative] = "?"
    return dict(sorted(entries.items()))


def materialize(store: Store, sha256: str, cache: Path, *, version: str | None = None) -> Path:
    """The model folder of an artifact, unpacked once under `cache/<sha256>/` (atomically, so
    a folder that exists is complete) and shared by every worker and test that needs it; the
    stored archive and the copy verified on every call. Raises ArtifactCorrupted (or
    ArtifactNotFound) naming `version` and the file."""
    target = cache / sha256
    try:
        record = _read_record(cache / f"{sha256}{RECORD_SUFFIX}")
        if target.is_dir() and record is not None:
            store.verify(sha256)
        else:
            record, fresh = _unpack(store, sha256, cache)
            if fresh:
                return target  # unpacked from the archive just verified, by this call
        _check_tree(target, record)
    except (ArtifactCorrupted, ArtifactNotFound) as error:
        raise _of_version(error, version) from None
    return target


def verify_version(workspace: Workspace, record: VersionRecord) -> None:
    """Refuse a version whose stored artifact changed, or whose unpacked copy did when one is
    cached, before it is deployed, promoted or tested (nothing is unpacked here: a backend that
    serves elsewhere needs no copy on this machine)."""
    sha256 = _artifact(record)
    cache = workspace.state_dir / "models"
    try:
        workspace.store().verify(sha256)
        tree = _read_record(cache / f"{sha256}{RECORD_SUFFIX}")
        if tree is not None and (cache / sha256).is_dir():
            _check_tree(cache / sha256, tree)
    except (ArtifactCorrupted, ArtifactNotFound) as error:
        raise _of_version(error, record.version) from None


def verify_copy(copy: Path, sha256: str, cache: Path, *, version: str | None = None) -> None:
    """Check a copy taken of an artifact's verified unpacked copy (Ray's app folders) against
    the same record; `materialize` has made the record."""
    record = _read_record(cache / f"{sha256}{RECORD_SUFFIX}")
    if record is None:
        raise ArtifactCorrupted(
            f"version {version or sha256}: no record of the unpacked tree of artifact {sha256} "
            f"to check the copy at {copy} against",
            file=cache / f"{sha256}{RECORD_SUFFIX}",
        )
    try:
        _check_tree(copy, record)
    except ArtifactCorrupted as error:
        raise _of_version(error, version) from None


def version_folder(workspace: Workspace, record: VersionRecord) -> Path:
    """The version's model folder, unpacked from the store and verified."""
    return materialize(
        workspace.store(), _artifact(record), workspace.state_dir / "models", version=record.version
    )


def _artifact(record: VersionRecord) -> str:
    if not record.artifact_sha256:
        raise ConfigError(f"version {record.version} has no artifact")
    return record.artifact_sha256


def _of_version(
    error: ArtifactCorrupted | ArtifactNotFound, version: str | None
) -> ArtifactCorrupted | ArtifactNotFound:
    """The same error, its message opening with the version it refuses."""
    if version is None:
        return error
    return type(error)(f"version {version}: {error.message}", file=error.file, key=error.key)


def _read_record(path: Path) -> dict[str, str] | None:
    """The recorded tree, or None when there is none (or it is unreadable: it is made again
    from the verified archive, so a damaged record refuses nothing by itself)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tree = document.get("tree") if isinstance(document, dict) else None
    if not isinstance(tree, dict) or not all(isinstance(v, str) for v in tree.values()):
        return None
    return {str(k): v for k, v in tree.items()}


def _unpack(store: Store, sha256: str, cache: Path) -> tuple[dict[str, str], bool]:
    """Unpack the verified archive, record its tree, and rename the copy into place unless
    another one is there (another process's, or one cached before trees were recorded: that
    one is checked against the record). The tree, and whether this call's copy is in place."""
    from modelci.train.artifacts import unpack

    target = cache / sha256
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as scratch:
        archive = store.get_file(sha256, Path(scratch) / "model.tar.gz")
        unpacked = unpack(archive, Path(scratch) / "model")
        tree = tree_digests(unpacked)
        _write_record(cache / f"{sha256}{RECORD_SUFFIX}", tree)
        if target.is_dir():
            return tree, False
        try:
            os.rename(unpacked, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(unpacked, ignore_errors=True)  # another process won the race
            return tree, False
    return tree, True


def _write_record(path: Path, tree: dict[str, str]) -> None:
    """Write the record atomically (every writer of one artifact writes the same bytes)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"tree": tree}, out, sort_keys=True)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def _check_tree(folder: Path, expected: dict[str, str]) -> None:
    """ArtifactCorrupted naming the first file of `folder` that differs from the record."""
    actual = tree_digests(folder)
    names = sorted({*expected, *actual})
    differing = [name for name in names if expected.get(name) != actual.get(name)]
    if not differing:
        return
    problems = []
    for name in differing[:SHOWN]:
        if name not in actual:
            problems.append(f"{name} is missing")
        elif name not in expected:
            problems.append(f"{name} is not in the artifact")
        else:
            problems.append(f"{name} hashes to {actual[name]}, not {expected[name]}")
    more = len(differing) - SHOWN
    raise ArtifactCorrupted(
        f"the unpacked copy of artifact {folder.name} was changed: {'; '.join(problems)}"
        + (f" (and {more} more)" if more > 0 else "")
        + f"; put the original files back, or delete {folder} to unpack it again from the store",
        file=folder / differing[0],
    )
