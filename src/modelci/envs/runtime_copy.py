"""The copy of modelci's runtime that goes on the PYTHONPATH of a model's environment, Ray job
or image: exactly `modelci/__init__.py` (`seed_everything`, standard library only) and the
`modelci/runtime/` package. It is copied, never installed, so modelci's own dependencies never
leak into a model."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]  # the modelci package


def runtime_files() -> list[Path]:
    """The files copied, under `SOURCE`: the package's `__init__.py` and `runtime/**.py`."""
    package = sorted(p for p in (SOURCE / "runtime").rglob("*.py") if "__pycache__" not in p.parts)
    return [SOURCE / "__init__.py", *package]


def copy_runtime(target: Path) -> Path:
    """Copy the runtime into `target/modelci/`; return `target` (the PYTHONPATH entry)."""
    for source in runtime_files():
        destination = target / "modelci" / source.relative_to(SOURCE)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return target


def runtime_dir(state_dir: Path) -> Path:
    """A copy of the runtime under `.modelci/runtime/<content hash>/`, made once and shared by
    every worker and probe of this modelci; returns the folder to put on PYTHONPATH."""
    digest = hashlib.sha256()
    for path in runtime_files():
        digest.update(str(path.relative_to(SOURCE)).encode() + b"\0" + path.read_bytes())
    target = state_dir / "runtime" / digest.hexdigest()[:16]
    if (target / "modelci" / "__init__.py").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".runtime-", dir=target.parent))
    copy_runtime(temporary)
    try:
        os.rename(temporary, target)
    except OSError:  # another process made it first
        shutil.rmtree(temporary, ignore_errors=True)
    return target


def runtime_environment(state_dir: Path) -> dict[str, str]:
    """This process's variables for a process of a model's environment that runs part of the
    runtime (the probe, the signature's recording): none of modelci's Python paths, the
    runtime's copy on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(runtime_dir(state_dir))
    return env
