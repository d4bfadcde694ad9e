"""The project as users install it: a wheel built by `uv build`, installed into a new
virtualenv with or without extras. Used by the packaging test and its size report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from uv import find_uv_bin

PROJECT = Path(__file__).resolve().parents[2]
EXTRAS = ("postgres", "s3", "sagemaker", "parquet", "ray")


def uv(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [find_uv_bin(), *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"uv {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
    return done.stdout


def build(out: Path) -> tuple[Path, Path]:
    """`uv build` of the project into `out`: (wheel, sdist)."""
    uv("build", "--quiet", "--out-dir", out, PROJECT, cwd=PROJECT)
    (wheel,) = out.glob("modelci-*.whl")
    (sdist,) = out.glob("modelci-*.tar.gz")
    return wheel, sdist


def install(wheel: Path, venv: Path, extra: str | None = None) -> Path:
    """A new virtualenv at `venv` with the wheel (and `extra`) installed; its site-packages."""
    uv("venv", "--quiet", "--python", sys.executable, venv)
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    uv("pip", "install", "--quiet", "--python", venv / "bin" / "python", target)
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    return site


def installed(venv: Path) -> set[str]:
    """The distributions installed in `venv`, by normalized name."""
    listing = uv("pip", "list", "--format", "freeze", "--python", venv / "bin" / "python")
    return {line.split("==")[0].lower().replace("_", "-") for line in listing.split()}


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
