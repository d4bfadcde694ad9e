"""A model's environment: a virtualenv built from its lock (`modelci.envs.locks`) plus the
serving layer (`modelci.envs.serving`), cached under `.modelci/envs/<hash>`.

modelci itself is never installed into the environment: a training job imports only what
its script imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelci.envs import lockfile
from modelci.envs.locks import (
    Lock,
    ModelRef,
    known_lock,
    resolve_lock,
    run_uv,
    sha256,
    shown,
    write_atomic,
)
from modelci.envs.serving import extra_serving_pins, serving_pins
from modelci.errors import EnvironmentFailed
from modelci.progress import Progress

if TYPE_CHECKING:
    from modelci.spec import ModelSpec

__all__ = [
    "MARKER",
    "Environment",
    "ModelRef",
    "cached_environment",
    "ensure_environment",
    "environment_hash",
    "is_complete",
    "locked_environment",
]

MARKER = ".modelci-env.json"
# A temporary build folder without a lock file (made before they existed) older than this
# belongs to a killed build and is swept away; one with a lock file, as soon as it is unheld.
STALE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Environment:
    """A built virtualenv: where it is, its interpreter, and the hashes that name it."""

    path: Path
    python: Path
    lock_hash: str  # sha256 of the lock text: recorded with every version trained in it
    env_hash: str  # sha256 of the lock, the serving pins and the Python version: its folder
    lock_path: Path  # the lock file used (committed, cached or written)
    cached: bool


def environment_hash(lock_text: str, pins: list[str]) -> str:
    """The name of the environment folder: the lock, the serving pins, the Python version."""
    document = {"lock": lock_text, "serving": pins, "python": _python_version()}
    return sha256(json.dumps(document, sort_keys=True))


def cached_environment(root: Path, model: ModelSpec | ModelRef) -> Environment | None:
    """The model's environment if it is already complete, else None; never runs uv."""
    lock = known_lock(root, model)
    if lock is None:
        return None
    env_hash = environment_hash(lock.text, serving_pins())
    path = root / ".modelci" / "envs" / env_hash
    if not is_complete(path):
        return None
    return Environment(path, _python_in(path), lock.hash, env_hash, lock.path, cached=True)


def ensure_environment(
    root: Path,
    model: ModelSpec | ModelRef,
    *,
    write_lock: bool = False,
    progress: Progress | None = None,
) -> Environment:
    """The model's environment, built unless one with the same hash is already complete.

    Built in a temporary folder beside its final place and renamed there when complete, so a
    killed build never leaves an environment that looks cached; of two concurrent builds of
    one environment, the second to finish discards its copy.
    """
    model = ModelRef.of(model)
    lock = resolve_lock(root, model, write_lock=write_lock, progress=progress)
    return _ensure(root, model, lock, progress)


def locked_environment(
    root: Path, name: str, lock_text: str, *, progress: Progress | None = None
) -> Environment:
    """The environment of a lock given as text (a version's stored lock: no model folder,
    no checkout), built under `root/.modelci/envs/` as `ensure_environment` builds it, and
    cached by the same hash."""
    lock_path = root / ".modelci" / "locks" / f"{sha256(lock_text)}.txt"
    if not lock_path.is_file():
        write_atomic(lock_path, lock_text)
    lock = Lock(lock_text, sha256(lock_text), lock_path, lock_path)
    return _ensure(root, ModelRef(name, ".", None), lock, progress)


def _ensure(root: Path, model: ModelRef, lock: Lock, progress: Progress | None) -> Environment:
    """`lock`'s environment, built unless complete (see `ensure_environment`)."""
    pins = serving_pins()
    env_hash = environment_hash(lock.text, pins)
    envs = root / ".modelci" / "envs"
    path = envs / env_hash

    def environment(cached: bool) -> Environment:
        return Environment(path, _python_in(path), lock.hash, env_hash, lock.path, cached)

    if is_complete(path):
        return environment(cached=True)
    envs.mkdir(parents=True, exist_ok=True)
    _sweep_stale(envs)
    temporary = envs / f".{env_hash[:16]}-{os.getpid()}-{time.monotonic_ns()}.tmp"
    with _claimed(temporary):
        try:
            _build(root, model, lock, pins, temporary, progress)
            _marker(temporary, lock, env_hash, pins)
            _move_into_place(temporary, path)
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
    return environment(cached=False)


def is_complete(path: Path) -> bool:
    """Whether `path` holds a finished environment: its marker and its interpreter exist."""
    return (path / MARKER).is_file() and _python_in(path).exists()


# --- building ---------------------------------------------------------------------------------


def _build(
    root: Path,
    model: ModelRef,
    lock: Lock,
    pins: list[str],
    target: Path,
    progress: Progress | None,
) -> None:
    """Create the virtualenv at `target`, install the lock, then the serving layer."""
    say = progress or (lambda _message: None)
    say(f"{model.name}: creating environment {target.parent.name}/{target.name}")
    # --relocatable: the venv is built under a temporary name and renamed into place, so its
    # scripts must not hard-code the folder they were made in.
    run_uv(
        ["venv", "--relocatable", "--quiet", "--python", sys.executable, str(target)],
        what="create the environment",
        file=shown(root, lock.path),
    )
    python = _python_in(target)
    # The lock is kept inside the environment: what was installed stays readable beside it,
    # and it is the file uv reads, whichever place the lock came from.
    installed_lock = target / "modelci-lock.txt"
    installed_lock.write_bytes(lock.text.encode("utf-8"))
    count = len(lockfile.pins(lock.text))
    say(f"{model.name}: installing the lock ({count} package{'s' if count != 1 else ''})")
    run_uv(
        [*_pip_install(python), "--require-hashes", "-r", str(installed_lock)],
        what="install the lock",
        file=shown(root, lock.path),
    )
    extra = extra_serving_pins(lock.text, pins)
    if extra:
        say(f"{model.name}: installing the serving layer ({len(extra)} packages)")
        # The lock as constraints: a serving package that needs another version of a locked
        # one fails here, rather than quietly replacing what the model was locked to.
        run_uv(
            [*_pip_install(python), "-c", str(installed_lock), *extra],
            what="install the serving layer (starlette, uvicorn, prometheus-client, numpy) "
            "beside the lock",
            file=shown(root, lock.path),
        )


def _pip_install(python: Path) -> list[str]:
    """`uv pip install` into the environment, byte-compiled: this image (and many CI images)
    sets PYTHONDONTWRITEBYTECODE, and an uncompiled environment recompiles every import of
    every job."""
    return ["pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]


def _marker(target: Path, lock: Lock, env_hash: str, pins: list[str]) -> None:
    """Write the file whose presence says the environment is complete."""
    document = {
        "env_hash": env_hash,
        "lock_hash": lock.hash,
        "serving": pins,
        "python": _python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (target / MARKER).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _move_into_place(temporary: Path, path: Path) -> None:
    """Rename the finished build to its final name; a complete environment already there
    (another build won the race) is kept and ours is dropped by the caller."""
    for _attempt in range(2):
        try:
            os.rename(temporary, path)
            return
        except OSError:
            if is_complete(path):
                return
            if not path.exists():
                continue
            # A folder without a marker is no environment (left by hand or by an old
            # version): set it aside atomically, then remove it.
            trash = path.with_name(f".{path.name[:16]}-{os.getpid()}-{time.monotonic_ns()}.tmp")
            try:
                os.rename(path, trash)
            except OSError:
                continue
            shutil.rmtree(trash, ignore_errors=True)
    raise EnvironmentFailed(f"could not move the new environment into place at {path}")


@contextmanager
def _claimed(temporary: Path) -> Iterator[None]:
    """Hold the lock file `<temporary>.lock` while the build runs: the kernel lets go of it
    when the build's process ends, however it ends, which tells the next build that the
    temporary folder is left over."""
    claim = _claim_of(temporary).open("a")
    try:
        fcntl.flock(claim, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            _claim_of(temporary).unlink()
        claim.close()


def _claim_of(temporary: Path) -> Path:
    return temporary.with_name(temporary.name + ".lock")


def _sweep_stale(envs: Path) -> None:
    """Remove the temporary folders of builds that were killed: at once when their lock file
    is no longer held, else (a folder from before lock files) once older than a day."""
    now = time.time()
    for entry in envs.glob(".*.tmp"):
        claim = _claim_of(entry)
        try:
            if claim.exists():
                _remove_unclaimed(entry, claim)
            elif now - entry.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass
    for claim in envs.glob(".*.tmp.lock"):  # a build killed as it cleaned up
        if not claim.with_suffix("").exists():
            with contextlib.suppress(OSError):
                _remove_unclaimed(claim.with_suffix(""), claim)


def _remove_unclaimed(entry: Path, claim: Path) -> None:
    """Remove `entry` and its lock file `claim` if no build holds the lock."""
    with claim.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # its build is running
        shutil.rmtree(entry, ignore_errors=True)
        claim.unlink()


# --- small helpers ----------------------------------------------------------------------------


def _python_in(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _python_version() -> str:
    return f"{sys.implementation.name}-{platform.python_version()}"
