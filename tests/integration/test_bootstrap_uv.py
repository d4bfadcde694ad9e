"""scripts/bootstrap-uv, which scripts/setup runs first, on a machine without uv: it installs uv
from PyPI into a private virtualenv (.tools/uv-venv) with the system's python3, where `pip
install` outside a virtualenv is refused (PEP 668, as on Debian 12 and Ubuntu 24.04)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[2] / "scripts" / "bootstrap-uv"


def _checkout(tmp_path: Path) -> Path:
    """A copy of the script where the real checkout's scripts/ would be."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(BOOTSTRAP, root / "scripts" / "bootstrap-uv")
    return root


def _bootstrap(root: Path, path: str, **extra: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": path, **extra}
    return subprocess.run(
        ["/bin/bash", str(root / "scripts" / "bootstrap-uv")],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _tools(tmp_path: Path, *names: str) -> Path:
    """A folder holding only the named system commands."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name, path="/usr/bin:/bin")
        assert found is not None, name
        (folder / name).symlink_to(found)
    return folder


@pytest.mark.slow
def test_installs_uv_into_a_private_virtualenv_when_none_is_on_path(tmp_path: Path) -> None:
    # every PATH folder that has no uv: here the distribution's python3 is what remains
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "uv").exists()
    )
    if shutil.which("python3", path=path) is None:
        pytest.skip("no python3 on PATH outside the folders that hold uv")
    root = _checkout(tmp_path)
    pip_cache = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "pip"
    extra = {
        "PIP_REQUIRE_VIRTUALENV": "1",  # pip refuses to install outside a virtualenv
        "PIP_CACHE_DIR": str(pip_cache),  # the real user's: the wheel downloads once
    }

    done = _bootstrap(root, path, **extra)
    assert done.returncode == 0, done.stderr
    uv = root / ".tools" / "uv-venv" / "bin" / "uv"
    assert done.stdout.strip() == str(uv)
    assert "setup: installing uv into .tools/uv-venv" in done.stderr
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("uv ")

    # again: the private uv is found, nothing is installed
    started = time.monotonic()
    again = _bootstrap(root, path, **extra)
    assert again.returncode == 0 and again.stdout.strip() == str(uv)
    assert again.stderr == ""
    assert time.monotonic() - started < 5


def test_a_python_without_venv_says_what_to_install(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    folder = _tools(tmp_path, "dirname", "rm", "mkdir", "id")
    # Debian's python3 without python3-venv: `python3 -m venv` fails for want of ensurepip
    fake_python = folder / "python3"
    fake_python.write_text("#!/bin/sh\necho 'ensurepip is not available' >&2\nexit 1\n")
    fake_python.chmod(0o755)

    done = _bootstrap(root, str(folder))  # no apt-get: nothing is installed, even as root
    assert done.returncode == 1 and done.stdout == ""
    assert "install python3-venv" in done.stderr
    assert not (root / ".tools" / "uv-venv").exists()


def test_no_python_and_no_uv_says_so(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    done = _bootstrap(root, str(_tools(tmp_path, "dirname")))
    assert done.returncode == 1
    assert "neither uv nor python3 is on PATH" in done.stderr
