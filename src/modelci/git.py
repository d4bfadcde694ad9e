"""The git calls modelci makes: one subprocess each, errors turned into GitError."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelci.errors import GitError


def find_root(start: Path) -> Path:
    """The top of the git work tree holding `start` (walked up in Python: no subprocess)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    raise GitError(
        f"{start} is not inside a git repository: `modelci init` makes a starter one here "
        "(or run `git init`, or pass -C DIR)"
    )


def run(root: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run `git -C root args...` and return its stdout; a failure raises GitError."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], input=input, capture_output=True, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise GitError(f"git {' '.join(args[:3])} failed: {message}")
    return done.stdout


def resolve(root: Path, rev: str) -> str | None:
    """The full commit id `rev` names, or None when the repository has no such commit."""
    done = subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{rev}^{{commit}}",
        ],
        capture_output=True,
        check=False,
    )
    return done.stdout.decode().strip() if done.returncode == 0 else None


def ref_exists(root: Path, ref: str) -> bool:
    """Whether the full ref name (`refs/tags/v1`) exists as written: no revision syntax."""
    done = subprocess.run(
        ["git", "-C", str(root), "show-ref", "--verify", "--quiet", ref],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def is_shallow(root: Path) -> bool:
    """Whether the clone is shallow (its history is cut off)."""
    return run(root, "rev-parse", "--is-shallow-repository").strip() == b"true"


def parents(root: Path, commit: str) -> list[str]:
    """The parents of a commit, first parent first (empty for a root commit)."""
    line = run(root, "rev-list", "--parents", "-n", "1", commit).decode().split()
    return line[1:]


def is_ancestor(root: Path, ancestor: str, descendant: str) -> bool:
    """Whether `ancestor` is reachable from `descendant`."""
    done = subprocess.run(
        ["git", "-C", str(root), "merge-base", "--is-ancestor", ancestor, descendant],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@functools.lru_cache(maxsize=16)
def tree_blobs(root: Path, commit: str) -> dict[str, str]:
    """Every file of a commit's tree: path -> blob id (cached per process: a commit's tree
    never changes; pass a commit id, not a branch name; don't change the answer)."""
    out = run(root, "ls-tree", "-r", "-z", "--full-tree", commit)
    blobs: dict[str, str] = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        _mode, kind, sha = meta.split(b" ")
        if kind == b"blob":
            blobs[path.decode()] = sha.decode()
    return blobs


def read_blobs(root: Path, shas: list[str]) -> dict[str, bytes]:
    """The contents of many blobs in one `git cat-file --batch` call."""
    if not shas:
        return {}
    out = run(root, "cat-file", "--batch", input="".join(f"{s}\n" for s in shas).encode())
    contents: dict[str, bytes] = {}
    position = 0
    for sha in shas:
        header_end = out.index(b"\n", position)
        header = out[position:header_end].split(b" ")
        if len(header) < 3:
            raise GitError(f"git has no object {sha}")
        size = int(header[2])
        start = header_end + 1
        contents[sha] = out[start : start + size]
        position = start + size + 1
    return contents


@dataclass(frozen=True)
class FileChange:
    """One entry of `git diff --raw`: status A, M, D, T or R, the path (the new one for a
    rename), the old path of a rename, and the blob ids before and after."""

    status: str
    path: str
    old_path: str | None
    old_blob: str
    new_blob: str


def diff(root: Path, base: str, head: str) -> list[FileChange]:
    """The files that differ between two commits, with renames found."""
    out = run(root, "diff", "-z", "--raw", "-M", "--no-abbrev", "--no-ext-diff", base, head)
    fields = out.split(b"\0")
    changes: list[FileChange] = []
    i = 0
    while i < len(fields) and fields[i]:
        _old_mode, _new_mode, old_blob, new_blob, status = fields[i].decode()[1:].split(" ")
        if status[0] in "RC":
            old_path, path = fields[i + 1].decode(), fields[i + 2].decode()
            i += 3
        else:
            old_path, path = None, fields[i + 1].decode()
            i += 2
        changes.append(FileChange(status[0], path, old_path, old_blob, new_blob))
    return changes


def uncommitted_paths(root: Path) -> list[str]:
    """Files changed in the work tree or index against HEAD, untracked ones file by file (an
    untracked folder's name alone would slip past globs such as `data/churn/*.csv`)."""
    out = run(root, "status", "--porcelain", "-z", "--untracked-files=all")
    paths: list[str] = []
    fields = out.split(b"\0")
    i = 0
    while i < len(fields) and fields[i]:
        entry = fields[i].decode()
        paths.append(entry[3:].rstrip("/"))
        if entry[0] in "RC":  # the rename's source follows as its own field
            i += 1
            paths.append(fields[i].decode())
        i += 1
    return paths


def identity(root: Path) -> str | None:
    """`Name <email>` of the git user, or None when unset."""
    done = subprocess.run(
        ["git", "-C", str(root), "var", "GIT_COMMITTER_IDENT"], capture_output=True, check=False
    )
    if done.returncode != 0:
        return None
    ident = done.stdout.decode().strip()
    return ident.rsplit(">", 1)[0] + ">" if ">" in ident else ident
