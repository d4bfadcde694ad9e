"""Install sizes: the wheel `uv build` makes, installed into new virtualenvs, alone and with
each extra. The baseline, measured in the same run, is an empty virtualenv; each extra is also
shown against the base install.

Run from the project root::

    .venv/bin/python bench/package_bench.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.package import EXTRAS, build, install, installed, size_mib, uv


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="modelci-package-") as scratch:
        work = Path(scratch)
        wheel, sdist = build(work / "dist")
        print(f"wheel {wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB")
        print(f"sdist {sdist.name}: {sdist.stat().st_size / 1024:.0f} KiB")
        uv("venv", "--quiet", "--python", sys.executable, work / "empty")
        (empty_site,) = (work / "empty" / "lib").glob("python3.*/site-packages")
        empty = size_mib(empty_site)
        print(f"\nempty virtualenv (baseline): {empty:.1f} MiB of site-packages\n")
        print(f"{'install':<22} {'MiB':>8} {'vs base':>9} {'packages':>9} {'seconds':>8}")
        base = None
        for extra in (None, *EXTRAS):
            venv = work / f"venv-{extra or 'base'}"
            start = time.perf_counter()
            site = install(wheel, venv, extra)
            seconds = time.perf_counter() - start
            mib = size_mib(site) - empty
            base = mib if base is None else base
            name = f"modelci[{extra}]" if extra else "modelci"
            added = f"+{mib - base:.1f}" if extra else "-"
            print(f"{name:<22} {mib:>8.1f} {added:>9} {len(installed(venv)):>9} {seconds:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
