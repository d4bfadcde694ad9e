"""A model's lock: its committed `requirements.lock` (used verbatim); else its requirements
file resolved with `uv pip compile --generate-hashes`, the result cached under `.modelci/locks/`
by the file's content (and the files it includes) so that a second build needs no network; else
the default requirements shipped with modelci, so that every model without requirements shares
one environment."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelci.errors import EnvironmentFailed
from modelci.processes import DIE_WITH_PARENT
from modelci.progress import Progress

if TYPE_CHECKING:
    from modelci.spec import ModelSpec

LOCK_FILE = "requirements.lock"
DEFAULT_REQUIREMENTS = Path(__file__).with_name("default-requirements.txt")
# Model-agnostic, so that two models with the same requirements get the same lock text.
COMPILE_COMMAND = "modelci build --write-lock"


@dataclass(frozen=True)
class ModelRef:
    """What of a model its environment depends on: its name, folder and requirements key.

    A validated ModelSpec gives one (`of`); so can a bare read of `model.toml`, which lets
    `modelci build` answer a cache hit without loading pydantic.
    """

    name: str
    folder: str  # relative to the repository root
    requirements: str | None  # `[model].requirements`, if set

    @classmethod
    def of(cls, model: ModelSpec | ModelRef) -> ModelRef:
        if isinstance(model, ModelRef):
            return model
        return cls(model.name, model.folder, model.file.model.requirements)


@dataclass(frozen=True)
class Lock:
    """A lock's text, its sha256, where it lives and which requirements file it came from."""

    text: str
    hash: str
    path: Path
    source: Path  # the requirements file (or the lock itself, when committed)


def lock_for(root: Path, model: ModelSpec | ModelRef) -> tuple[str, str]:
    """The model's lock text and its sha256, resolving (and caching) it if needed, without
    creating the environment."""
    lock = resolve_lock(root, model)
    return lock.text, lock.hash


def resolve_lock(
    root: Path,
    model: ModelSpec | ModelRef,
    *,
    write_lock: bool = False,
    progress: Progress | None = None,
) -> Lock:
    """The lock a model's environment is built from, resolved with uv when neither committed
    nor cached; `write_lock` also writes it beside the model as `requirements.lock`."""
    model = ModelRef.of(model)
    lock = known_lock(root, model)
    if lock is None:
        requirements = requirements_file(root, model)
        if progress:
            progress(f"{model.name}: resolving {shown(root, requirements)} with uv")
        text = _compile(root, requirements)
        path = _lock_cache_path(root, requirements)
        write_atomic(path, text)
        lock = Lock(text, sha256(text), path, requirements)
    committed = root / model.folder / LOCK_FILE
    if write_lock and lock.path != committed:
        write_atomic(committed, lock.text)
        lock = Lock(lock.text, lock.hash, committed, lock.source)
    return lock


def known_lock(root: Path, model: ModelSpec | ModelRef) -> Lock | None:
    """The committed lock, else the cached resolution of the requirements, else None."""
    model = ModelRef.of(model)
    committed = root / model.folder / LOCK_FILE
    if committed.is_file():
        return _read_lock(committed, committed)
    requirements = requirements_file(root, model)
    cached = _lock_cache_path(root, requirements)
    if not cached.is_file():
        return None
    return _read_lock(cached, requirements)


def _read_lock(path: Path, source: Path) -> Lock:
    """A lock file as it is: its hash is over its bytes (no newline translation)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvironmentFailed("the lock is not UTF-8 text", file=path) from None
    return Lock(text, sha256(data), path, source)


def _lock_cache_path(root: Path, requirements: Path) -> Path:
    """Where a requirements file's resolution is cached: by its content and the Python minor
    version, so that an unchanged file is never resolved (nor the network asked) twice."""
    key = sha256(_requirements_content(requirements) + b"\0" + python_minor().encode())
    return root / ".modelci" / "locks" / f"{key}.txt"


_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?=\S))(\S+)")


def _requirements_content(requirements: Path, seen: frozenset[Path] = frozenset()) -> bytes:
    """The file's bytes followed by those of every local file it includes with `-r` or `-c`
    (recursively, relative to the including file, as pip reads them): editing an included
    file must resolve the lock again. A missing include adds its name only (uv then names
    it)."""
    data = requirements.read_bytes()
    parts, chain = [data], seen | {requirements.resolve()}
    for line in data.decode("utf-8", errors="replace").splitlines():
        found = _INCLUDE.match(line)
        if found is None or "://" in found.group(1):
            continue
        included = (requirements.parent / found.group(1)).resolve()
        parts.append(b"\0" + found.group(1).encode() + b"\0")
        if included.is_file() and included not in chain:
            parts.append(_requirements_content(included, chain))
    return b"".join(parts)


def requirements_file(root: Path, model: ModelSpec | ModelRef) -> Path:
    """The requirements file the model names, else its `requirements.txt`, else the default."""
    model = ModelRef.of(model)
    folder = root / model.folder
    named = model.requirements
    if named is not None:
        return folder / named
    if (folder / "requirements.txt").is_file():
        return folder / "requirements.txt"
    return DEFAULT_REQUIREMENTS


# --- uv ---------------------------------------------------------------------------------------


def _compile(root: Path, requirements: Path) -> str:
    """Resolve a requirements file into a lock with hashes."""
    # Run from the file's folder with a relative name, so that `-r` and `-e` lines inside it
    # resolve as the user wrote them. --no-annotate: `# via` lines would name the file, and
    # the lock must depend only on what it pins, so equal requirements share one environment.
    return run_uv(
        [
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--no-annotate",
            "--python-version",
            python_minor(),
            "--python",
            sys.executable,
            "--custom-compile-command",
            COMPILE_COMMAND,
            requirements.name,
        ],
        what="resolve the requirements",
        file=shown(root, requirements),
        cwd=requirements.parent,
    )


def run_uv(args: list[str], *, what: str, file: str, cwd: Path | None = None) -> str:
    """Run uv and return its stdout; a failure raises EnvironmentFailed with uv's reason."""
    try:
        from uv import find_uv_bin

        uv = find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise EnvironmentFailed(
                "uv is not installed: modelci needs it to build environments (pip install uv)",
                file=file,
            ) from None
        uv = found
    environ = dict(os.environ)
    # Whatever virtualenv modelci runs in is not the one uv should touch: --python says which.
    environ.pop("VIRTUAL_ENV", None)
    try:
        done = subprocess.run(
            # a killed build's uv dies with it, instead of finishing (or hanging) unwatched
            [*DIE_WITH_PARENT, uv, "--color", "never", *args],
            cwd=cwd,
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise EnvironmentFailed(f"could not run uv to {what}: {exc}", file=file) from None
    if done.returncode != 0:
        reason = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
        raise EnvironmentFailed(f"uv could not {what}:\n{reason}", file=file)
    return done.stdout


# --- small helpers ----------------------------------------------------------------------------


def python_minor() -> str:
    """`3.11`: the minor version locks are resolved for."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def sha256(data: str | bytes) -> str:
    """The hex sha256 of text (as UTF-8) or bytes."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def shown(root: Path, path: Path) -> str:
    """A path as messages show it: relative to the repository when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a cached lock must never be half written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(text.encode("utf-8"))  # bytes: no newline translation
    os.replace(temporary, path)
