"""A model's environment: its requirements resolved into a hash-pinned lock by uv, and a
virtualenv built from that lock plus the serving layer, cached under `.modelci/envs/<hash>`.

The lock is, in order: the model's committed `requirements.lock` (used verbatim); else its
requirements file resolved with `uv pip compile --generate-hashes` (the result cached under
`.modelci/locks/` so that a second build needs no network); else the default requirements
shipped with modelci, so that every model without requirements shares one environment.

modelci itself is never installed into the environment: a training job imports only what
its script imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelci.errors import EnvironmentFailed

if TYPE_CHECKING:
    from modelci.spec import ModelSpec

LOCK_FILE = "requirements.lock"
DEFAULT_REQUIREMENTS = Path(__file__).with_name("default-requirements.txt")
MARKER = ".modelci-env.json"
# What the inference server needs inside the model's environment; pinned (with everything
# they depend on) to the versions modelci itself runs with, so that local serving and the
# environment agree.
# httptools and uvloop: uvicorn's fast HTTP parser and event loop (its "standard" extra)
SERVING_PACKAGES = ("starlette", "uvicorn", "prometheus-client", "numpy", "httptools", "uvloop")
# Model-agnostic, so that two models with the same requirements get the same lock text.
COMPILE_COMMAND = "modelci build --write-lock"
# A temporary build folder older than this belongs to a killed build and is swept away.
STALE_SECONDS = 24 * 3600

_LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Environment:
    """A built virtualenv: where it is, its interpreter, and the hashes that name it."""

    path: Path
    python: Path
    lock_hash: str  # sha256 of the lock text: recorded with every version trained in it
    env_hash: str  # sha256 of the lock, the serving pins and the Python version: its folder
    lock_path: Path  # the lock file used (committed, cached or written)
    cached: bool


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
            progress(f"{model.name}: resolving {_shown(root, requirements)} with uv")
        text = _compile(root, requirements)
        path = _lock_cache_path(root, requirements)
        _write_atomic(path, text)
        lock = Lock(text, _sha256(text), path, requirements)
    committed = root / model.folder / LOCK_FILE
    if write_lock and lock.path != committed:
        _write_atomic(committed, lock.text)
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
    return Lock(text, _sha256(data), path, source)


def _lock_cache_path(root: Path, requirements: Path) -> Path:
    """Where a requirements file's resolution is cached: by its content and the Python minor
    version, so that an unchanged file is never resolved (nor the network asked) twice."""
    key = _sha256(_requirements_content(requirements) + b"\0" + _python_minor().encode())
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


def serving_pins() -> list[str]:
    """`name==version` for the serving packages and everything they need, as installed in
    modelci's own environment (only what is installed here counts: extras are left out)."""
    installed = _installed()
    pins: dict[str, str] = {}
    pending = list(SERVING_PACKAGES)
    while pending:
        name = _canonical(pending.pop())
        if name in pins or name not in installed:
            continue
        version, requires = _metadata(installed[name])
        pins[name] = version
        for requirement in requires:
            spec, _, marker = requirement.partition(";")
            match = _REQUIREMENT_NAME.match(spec)
            if match and "extra" not in marker:
                pending.append(match.group(1))
    return sorted(f"{name}=={version}" for name, version in pins.items())


def _installed() -> dict[str, Path]:
    """Every distribution on sys.path by canonical name -> its `.dist-info` folder.

    Read straight from the folders' names rather than through importlib.metadata, whose
    import and lookups alone take a third of what a cached `modelci build` may take.
    """
    found: dict[str, Path] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info"):
                # `<name>-<version>.dist-info`, where the name has no '-' (it is escaped to _)
                name = folder[: -len(".dist-info")].partition("-")[0]
                found.setdefault(_canonical(name), Path(entry or ".", folder))
    return found


def _metadata(dist_info: Path) -> tuple[str, list[str]]:
    """A distribution's version and `Requires-Dist` lines, from its METADATA headers."""
    version = ""
    requires: list[str] = []
    with open(dist_info / "METADATA", encoding="utf-8") as metadata:
        for line in metadata:
            if not line.strip():
                break  # the headers end at the first blank line; the description follows
            key, _, value = line.partition(":")
            if key == "Version":
                version = value.strip()
            elif key == "Requires-Dist":
                requires.append(value.strip())
    return version, requires


def lock_pins(lock_text: str) -> dict[str, str]:
    """The packages a lock pins, by canonical name."""
    pins: dict[str, str] = {}
    for line in lock_text.splitlines():
        match = _LOCK_LINE.match(line.strip())
        if match:
            pins[_canonical(match.group(1))] = match.group(2)
    return pins


def extra_serving_pins(lock_text: str, pins: list[str]) -> list[str]:
    """The serving pins the lock does not already pin: where both name a package, the lock
    wins, so that the model's hash-checked versions are the ones it trains and serves with."""
    locked = lock_pins(lock_text)
    return [pin for pin in pins if _canonical(pin.split("==")[0]) not in locked]


def environment_hash(lock_text: str, pins: list[str]) -> str:
    """The name of the environment folder: the lock, the serving pins, the Python version."""
    document = {"lock": lock_text, "serving": pins, "python": _python_version()}
    return _sha256(json.dumps(document, sort_keys=True))


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
    _uv(
        ["venv", "--relocatable", "--quiet", "--python", sys.executable, str(target)],
        what="create the environment",
        file=_shown(root, lock.path),
    )
    python = _python_in(target)
    # The lock is kept inside the environment: what was installed stays readable beside it,
    # and it is the file uv reads, whichever place the lock came from.
    installed_lock = target / "modelci-lock.txt"
    installed_lock.write_bytes(lock.text.encode("utf-8"))
    count = len(lock_pins(lock.text))
    say(f"{model.name}: installing the lock ({count} package{'s' if count != 1 else ''})")
    _uv(
        [*_pip_install(python), "--require-hashes", "-r", str(installed_lock)],
        what="install the lock",
        file=_shown(root, lock.path),
    )
    extra = extra_serving_pins(lock.text, pins)
    if extra:
        say(f"{model.name}: installing the serving layer ({len(extra)} packages)")
        # The lock as constraints: a serving package that needs another version of a locked
        # one fails here, rather than quietly replacing what the model was locked to.
        _uv(
            [*_pip_install(python), "-c", str(installed_lock), *extra],
            what="install the serving layer (starlette, uvicorn, prometheus-client, numpy) "
            "beside the lock",
            file=_shown(root, lock.path),
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


def _sweep_stale(envs: Path) -> None:
    """Remove temporary folders that killed builds left behind long ago."""
    now = time.time()
    for entry in envs.glob(".*.tmp"):
        try:
            if now - entry.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


# --- uv ---------------------------------------------------------------------------------------


def _compile(root: Path, requirements: Path) -> str:
    """Resolve a requirements file into a lock with hashes."""
    # Run from the file's folder with a relative name, so that `-r` and `-e` lines inside it
    # resolve as the user wrote them. --no-annotate: `# via` lines would name the file, and
    # the lock must depend only on what it pins, so equal requirements share one environment.
    return _uv(
        [
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--no-annotate",
            "--python-version",
            _python_minor(),
            "--python",
            sys.executable,
            "--custom-compile-command",
            COMPILE_COMMAND,
            requirements.name,
        ],
        what="resolve the requirements",
        file=_shown(root, requirements),
        cwd=requirements.parent,
    )


def _uv(args: list[str], *, what: str, file: str, cwd: Path | None = None) -> str:
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
            [uv, "--color", "never", *args],
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


def _python_in(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _python_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _python_version() -> str:
    return f"{sys.implementation.name}-{platform.python_version()}"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _shown(root: Path, path: Path) -> str:
    """A path as messages show it: relative to the repository when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a cached lock must never be half written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(text.encode("utf-8"))  # bytes: no newline translation
    os.replace(temporary, path)
