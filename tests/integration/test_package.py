"""The package installs like a package: `uv build` makes a wheel and an sdist; the wheel,
installed alone or with each extra into a new virtualenv, gives a `modelci` that works, and
the base install carries none of the development tools, moto or Ray."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelci import __version__
from modelci.envs.serving import SERVING_PACKAGES
from tests.support.package import EXTRAS, build, install, installed

pytestmark = pytest.mark.slow

# what each extra must make importable: the modules modelci's backends import lazily
EXTRA_MODULES = {
    "postgres": "psycopg",
    "s3": "boto3",
    "sagemaker": "boto3",
    "parquet": "pyarrow",
    "ray": "ray",
}
NEVER_IN_BASE = {"pytest", "ruff", "mypy", "moto", "ray", "boto3", "psycopg", "pyarrow"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    built, _ = build(tmp_path_factory.mktemp("dist"))
    yield built


_ENVIRON = {
    **{k: v for k, v in os.environ.items() if not k.startswith("MODELCI_")},
    "NO_COLOR": "1",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Package Test",
    "GIT_AUTHOR_EMAIL": "package@example.com",
    "GIT_COMMITTER_NAME": "Package Test",
    "GIT_COMMITTER_EMAIL": "package@example.com",
}


def _modelci(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "modelci"), *args],
        cwd=cwd,
        env=_ENVIRON,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_wheel_and_sdist_hold_the_code_and_its_data(tmp_path: Path) -> None:
    wheel, sdist = build(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "modelci/runtime/app.py",  # what environments and images get
        "modelci/registry/migrations/script.py.mako",
        "modelci/starter/modelci.toml",
        "modelci/envs/default-requirements.txt",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"Version: {__version__}" in text
    for extra in EXTRAS:
        assert f"Provides-Extra: {extra}" in text
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "src/modelci/runtime/app.py", "README.md"} <= members


def test_the_base_install_works_and_carries_no_development_tools(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    install(wheel, venv)
    assert not NEVER_IN_BASE & installed(venv), NEVER_IN_BASE & installed(venv)
    version = _modelci(venv, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"modelci {__version__}"

    # a starter repository, validated and inspected by the installed command alone
    repo = tmp_path / "repo"
    made = _modelci(venv, "init", str(repo), cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    validated = _modelci(venv, "validate", "--json", cwd=repo)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert json.loads(validated.stdout)["ok"] is True
    for git in (("add", "-A"), ("commit", "-q", "-m", "starter")):
        subprocess.run(["git", "-C", str(repo), *git], check=True, env=_ENVIRON)
    changed = _modelci(venv, "changed", "--json", cwd=repo)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert [m["model"] for m in json.loads(changed.stdout)["changed"]] == ["example"]

    # what every model environment gets beside its lock is installed with modelci itself,
    # so it is pinned to modelci's own versions
    pins = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import json\nfrom modelci.envs.serving import serving_pins\n"
            "print(json.dumps(serving_pins()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    pinned = {pin.split("==")[0] for pin in json.loads(pins.stdout)}
    assert set(SERVING_PACKAGES) <= pinned, set(SERVING_PACKAGES) - pinned

    # an extra it lacks is named, with the install to make
    needs = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from modelci.registry import open_registry\n"
            "open_registry('postgresql://nobody@127.0.0.1:1/none', '.')",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert needs.returncode != 0 and "modelci[postgres]" in needs.stderr, needs.stderr


@pytest.mark.parametrize("extra", EXTRAS)
def test_each_extra_installs_what_its_backend_imports(
    wheel: Path, tmp_path: Path, extra: str
) -> None:
    venv = tmp_path / "venv"
    install(wheel, venv, extra)
    module = EXTRA_MODULES[extra]
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import {module}, modelci.cli"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert _modelci(venv, "--version", cwd=tmp_path).returncode == 0
