"""The local artifact store: a content-addressed folder, `<root>/sha256/<first two hex>/<digest>`.

Writes go to a temporary file under `<root>/tmp` (the same filesystem, so the final rename is
atomic), are fsynced, then renamed into place and the folder fsynced: a reader sees either no
object or the whole one, even after a crash. Reads hash what they return and refuse an object
whose content no longer matches its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ConfigError
from modelci.store.base import Store, StoredArtifact, check_name

# Big enough that hashing, not system calls, dominates; small enough that a multi-gigabyte
# model never sits in memory whole.
CHUNK_SIZE = 1024 * 1024

_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_digest(sha256: str) -> str:
    """Return `sha256` if it is 64 lowercase hex digits, else raise ConfigError."""
    if not isinstance(sha256, str) or not _DIGEST.fullmatch(sha256):
        raise ConfigError(
            f"not a sha256 digest (64 lowercase hex digits): {sha256!r}", key="sha256"
        )
    return sha256


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (POSIX needs the folder itself synced)."""
    if os.name != "posix":  # Windows cannot open a folder for fsync; NTFS journals renames
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chmod(fd: int, mode: int) -> None:
    if hasattr(os, "fchmod"):  # not on Windows, where the mode bits mean little anyway
        os.fchmod(fd, mode)


class HashingWriter:
    """A write-only file that hashes what it writes. Having no seek, it makes boto3's transfer
    manager write the parts in order (buffering the few that arrive early), so the digest is
    made during the download, with no second pass over the file."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.out.write(data)


@contextlib.contextmanager
def verified_download(
    destination: Path, sha256: str, corrupted: Callable[[str], Exception]
) -> Iterator[HashingWriter]:
    """A file beside `destination` for a store to write an artifact into. Once written it is
    made an ordinary file (mkstemp makes 0600), synced, its digest checked (`corrupted(actual)`
    is raised on a mismatch) and renamed into place: the destination appears whole and
    verified or not at all, and on any error the partial file is removed."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            writer = HashingWriter(out)
            yield writer
            out.flush()
            _chmod(out.fileno(), 0o644)
            os.fsync(out.fileno())
        actual = writer.digest.hexdigest()
        if actual != sha256:
            raise corrupted(actual)
        os.replace(tmp, destination)
        _fsync_dir(destination.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


class LocalStore(Store):
    """Artifacts kept in a folder on this machine, named by their sha256."""

    def __init__(self, root: Path) -> None:
        # Absolute, so that `uri_for` gives a `file://` URI that means the same from any cwd.
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------------

    def path_for(self, sha256: str) -> Path:
        """Where the object with that digest lives (whether or not it exists)."""
        check_digest(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    @property
    def _tmp(self) -> Path:
        return self.root / "tmp"

    # -- writing -------------------------------------------------------------------------------

    def put_file(self, path: Path) -> StoredArtifact:
        """Store a file's content; storing the same content twice stores it once."""
        with open(path, "rb") as stream:
            return self.put_stream(stream)

    def put_bytes(self, data: bytes) -> StoredArtifact:
        """Store bytes; as put_file."""
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO) -> StoredArtifact:
        """Store everything `stream` yields, hashing it on the way, in chunks.

        If reading fails midway nothing is stored and the temporary file is removed.
        """
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(stream):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                # Objects are write-once; read-only guards against an editor saving over one.
                _chmod(out.fileno(), 0o444)
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            final = self.path_for(sha256)
            if final.is_file() and final.stat().st_size == size:
                # Same content already stored: keep the existing object, drop the copy. (A
                # stored object of another size is damaged; the rename below heals it.)
                tmp.unlink()
            else:
                shard_is_new = not final.parent.is_dir()
                final.parent.mkdir(parents=True, exist_ok=True)
                if shard_is_new:
                    _fsync_dir(final.parent.parent)
                os.replace(tmp, final)
                _fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return StoredArtifact(uri=self.uri_for(sha256), sha256=sha256, size=size)

    # -- reading -------------------------------------------------------------------------------

    def _open(self, sha256: str) -> tuple[Path, BinaryIO]:
        path = self.path_for(sha256)
        try:
            return path, open(path, "rb")  # the caller closes it
        except FileNotFoundError:
            raise ArtifactNotFound(
                f"no artifact with sha256 {sha256} in the store at {self.root}"
            ) from None

    @staticmethod
    def _corrupted(path: Path, expected: str, actual: str) -> ArtifactCorrupted:
        return ArtifactCorrupted(
            f"stored artifact is corrupted: its content hashes to sha256 {actual}, "
            f"not {expected}; delete the file and store the artifact again",
            file=path,
        )

    def get_file(self, sha256: str, destination: Path) -> Path:
        """Copy the artifact to `destination`, verifying its digest on the way.

        The destination appears whole and verified or not at all: the copy goes to a temporary
        file beside it and is renamed into place only once the digest matched.
        Raises ArtifactNotFound, or ArtifactCorrupted naming the stored file.
        """
        destination = Path(destination)
        path, stream = self._open(sha256)
        with (
            stream,
            verified_download(
                destination, sha256, lambda actual: self._corrupted(path, sha256, actual)
            ) as out,
        ):
            for chunk in _chunks(stream):
                out.write(chunk)
        return destination

    def get_bytes(self, sha256: str) -> bytes:
        """The artifact's content, verified."""
        path, stream = self._open(sha256)
        digest = hashlib.sha256()
        buffer = bytearray()
        with stream:
            for chunk in _chunks(stream):
                digest.update(chunk)
                buffer += chunk
        if digest.hexdigest() != sha256:
            raise self._corrupted(path, sha256, digest.hexdigest())
        return bytes(buffer)

    def verify(self, sha256: str) -> None:
        """Re-hash the object in place: ArtifactCorrupted naming it when its content changed,
        ArtifactNotFound when it is gone."""
        path, stream = self._open(sha256)
        with stream:
            digest = hashlib.sha256()
            for chunk in _chunks(stream):
                digest.update(chunk)
            actual = digest.hexdigest()
        if actual != sha256:
            raise self._corrupted(path, sha256, actual)

    def exists(self, sha256: str) -> bool:
        """Whether the store holds that digest (present, not verified)."""
        return self.path_for(sha256).is_file()

    def uri_for(self, sha256: str) -> str:
        """The `file://` URI of the object's path."""
        return self.path_for(sha256).as_uri()

    # -- named files ---------------------------------------------------------------------------

    def put_named(self, name: str, data: bytes) -> str:
        """Write `data` at `<root>/<name>` whole or not at all (a temporary file renamed)."""
        final = self.root / check_name(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                _chmod(out.fileno(), 0o644)
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return final.as_uri()

    def list_named(self, prefix: str) -> list[str]:
        """Every file under `<root>/<prefix>`, as names relative to the root."""
        folder = self.root / check_name(prefix.strip("/"))
        if not folder.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )

    def get_named(self, name: str) -> bytes:
        """The file at `<root>/<name>`."""
        try:
            return (self.root / check_name(name)).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(f"no file {name!r} in the store at {self.root}") from None
