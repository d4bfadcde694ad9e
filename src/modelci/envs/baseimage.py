"""`modelci base-image`: a base image equivalent to the official slim Python image, made from
Debian's packages where no image registry can be pulled from (debootstrap's minimal bookworm
with python3, python3-venv and ca-certificates, imported into the engine). Made once per
engine storage: a second call finds the tag and returns at once."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelci.envs.engine import Engine
from modelci.errors import ConfigError, EnvironmentFailed
from modelci.progress import Progress

SUITE = "bookworm"  # its python3 is 3.11, modelci's
TAG = f"localhost/modelci-base:{SUITE}-python3"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_TIMEOUT = 1800.0
LOCK = Path(tempfile.gettempdir()) / "modelci-base-image.lock"
# What `podman import` cannot know from a root file system: the image's settings.
CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    f'LABEL org.opencontainers.image.title="modelci-base" '
    f'org.opencontainers.image.description="Debian {SUITE} minbase with {", ".join(PACKAGES)}"',
    'CMD ["python3"]',
)


@dataclass(frozen=True)
class BaseImage:
    """The base image's tag, and whether this call built it."""

    tag: str
    built: bool

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "built": self.built}


def ensure_base_image(
    engine: Engine, *, mirror: str = MIRROR, progress: Progress | None = None
) -> BaseImage:
    """The base image's tag, built first when the engine does not hold it. Two callers at
    once build it once: the second waits on a lock and then finds it."""
    if engine.has_image(TAG):
        return BaseImage(TAG, False)
    debootstrap = shutil.which("debootstrap") or shutil.which("/usr/sbin/debootstrap")
    if debootstrap is None:
        raise ConfigError(
            "debootstrap is missing: scripts/ensure-podman installs it (Debian package debootstrap)"
        )
    if os.geteuid() != 0:
        raise ConfigError("building a base image with debootstrap needs root")
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if engine.has_image(TAG):  # another process built it while this one waited
            return BaseImage(TAG, False)
        _build(engine, debootstrap, mirror, progress)
    return BaseImage(TAG, True)


def _build(engine: Engine, debootstrap: str, mirror: str, progress: Progress | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="modelci-base-", dir="/var/tmp"))
    try:
        rootfs = folder / "rootfs"
        if progress:
            progress(f"debootstrap {SUITE} ({', '.join(PACKAGES)}): about two minutes")
        command = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise EnvironmentFailed(
                f"debootstrap took longer than {DEBOOTSTRAP_TIMEOUT:g} s"
            ) from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-20:])
            raise EnvironmentFailed(f"debootstrap failed:\n{tail}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        archive = folder / "rootfs.tar"
        if progress:
            progress(f"importing the root file system as {TAG}")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."],
            check=True,
            capture_output=True,
        )
        changes = [argument for change in CHANGES for argument in ("--change", change)]
        engine.run(
            ["import", *changes, str(archive), TAG],
            what=f"import of {TAG}",
            error=EnvironmentFailed,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
