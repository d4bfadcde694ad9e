"""Every test runs with its own HOME and a fixed git identity, and can make real git
repositories, including copies of the bundled example repository."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import CliResult
from tests.support.hosts import Hosts, Toy, hosted_toy, watched_hosts
from tests.support.repos import GitRepo

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh HOME and git identity, and no MODELCI_* or CI variables from outside."""
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    # uv's download cache stays the real user's, so that environments build without the network
    uv_cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    for variable in list(os.environ):
        if variable.startswith(("MODELCI_", "GIT_", "CIRCLE_", "GITHUB_")):
            del os.environ[variable]
    os.environ.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Author",
            "GIT_COMMITTER_EMAIL": "author@example.com",
            "NO_COLOR": "1",
            "UV_CACHE_DIR": uv_cache,
            # the suite's own runs on local settings stay allowed when it runs under CI=true;
            # tests of the refusal remove it (modelci.throwaway)
            "MODELCI_ALLOW_LOCAL": "1",
        }
    )
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[..., GitRepo]:
    """Factory: `git_repo()` an empty repository, `git_repo(examples=True)` a committed copy
    of the bundled example repository."""
    count = 0

    def make(*, examples: bool = False) -> GitRepo:
        nonlocal count
        count += 1
        root = tmp_path / f"repo{count}"
        if examples:
            shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            root.mkdir()
        repo = GitRepo(root)
        repo.git("init", "-q", "-b", "main")
        if examples:
            repo.commit("example repository")
        return repo

    return make


@pytest.fixture
def modelci(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `modelci ARGS...` in process through its real entry point, error handling included."""
    from modelci.cli import main

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def hosts(modelci: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    """The endpoint hosts a test starts: stopped, and checked for leftover processes, after."""
    yield from watched_hosts(modelci, monkeypatch)


@pytest.fixture
def toy(
    git_repo: Callable[..., GitRepo],
    modelci: Callable[..., CliResult],
    hosts: Hosts,
    shared_envs: Path,
) -> Toy:
    """The toy model in a fresh repository, served by a watched host (tests/support/hosts);
    `shared_envs` comes from the folder's conftest (or the module)."""
    return hosted_toy(git_repo(), modelci, hosts, shared_envs)
