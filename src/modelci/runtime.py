"""The part of modelci that runs inside a model's own environment or image: the inference
server, the training entry point and the in-process probe. They import only the standard
library and what the serving layer installs, so they are put on PYTHONPATH there, never
installed, and modelci's own dependencies never leak into a model."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent
PARTS = ("__init__.py", "errors.py", "serve", "train", "testing/__init__.py", "testing/probe.py")


def _files() -> list[Path]:
    files: list[Path] = []
    for part in PARTS:
        path = SOURCE / part
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.is_file():
            files.append(path)
    return files


def copy_runtime(target: Path) -> Path:
    """Copy the runtime parts into `target/modelci/`; return `target` (the PYTHONPATH entry)."""
    for source in _files():
        destination = target / "modelci" / source.relative_to(SOURCE)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return target


def runtime_dir(state_dir: Path) -> Path:
    """A copy of the runtime under `.modelci/runtime/<content hash>/`, made once and shared by
    every worker and probe of this modelci; returns the folder to put on PYTHONPATH."""
    digest = hashlib.sha256()
    for path in _files():
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
