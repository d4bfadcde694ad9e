"""Locks, serving pins and environment hashes: the pure parts of `modelci.envs.uv`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from modelci.envs.lockfile import pins as lock_pins
from modelci.envs.locks import DEFAULT_REQUIREMENTS, ModelRef, known_lock, requirements_file
from modelci.envs.serving import extra_serving_pins, serving_pins
from modelci.envs.uv import cached_environment, environment_hash, is_complete
from tests.support.repos import SIX_LOCK, GitRepo


def test_lock_pins_reads_names_and_versions() -> None:
    text = SIX_LOCK + "Scikit_Learn[extra]==1.5.0 ; python_version >= '3.9' \\\n    --hash=x\n"
    assert lock_pins(text) == {"six": "1.16.0", "scikit-learn": "1.5.0"}


def test_the_lock_wins_over_a_serving_pin() -> None:
    pins = ["numpy==2.1.0", "starlette==0.40.0", "typing-extensions==4.12.0"]
    lock = "numpy==1.26.4 \\\n    --hash=sha256:aa\ntyping_extensions==4.9.0\n"
    assert extra_serving_pins(lock, pins) == ["starlette==0.40.0"]


def test_serving_pins_are_modelci_own_versions_with_their_dependencies() -> None:
    pins = dict(pin.split("==") for pin in serving_pins())
    for name in ("starlette", "uvicorn", "prometheus-client", "numpy", "anyio", "h11", "click"):
        assert pins[name] == version(name), name
    assert "modelci" not in pins
    assert "httpx" not in pins  # starlette's `full` extra is not what serving needs


def test_environment_hash_follows_lock_and_pins() -> None:
    pins = serving_pins()
    same = environment_hash(SIX_LOCK, pins)
    assert same == environment_hash(SIX_LOCK, list(pins))
    assert same != environment_hash(SIX_LOCK + "\n", pins)
    assert same != environment_hash(SIX_LOCK, [*pins, "extra==1"])


def test_requirements_file_named_then_conventional_then_default(
    git_repo: Callable[..., GitRepo],
) -> None:
    repo = git_repo()
    root = repo.root
    repo.write("models/a/other.txt", "six\n")
    repo.write("models/a/requirements.txt", "six\n")
    assert requirements_file(root, ModelRef("a", "models/a", "other.txt")) == (
        root / "models/a/other.txt"
    )
    assert requirements_file(root, ModelRef("a", "models/a", None)) == (
        root / "models/a/requirements.txt"
    )
    assert requirements_file(root, ModelRef("b", "models/b", None)) == DEFAULT_REQUIREMENTS
    assert {"scikit-learn", "pandas", "numpy", "joblib"} <= set(
        DEFAULT_REQUIREMENTS.read_text().split()
    )


def test_a_committed_lock_is_hashed_over_its_bytes(git_repo: Callable[..., GitRepo]) -> None:
    repo = git_repo()
    data = SIX_LOCK.replace("\n", "\r\n").encode()  # newline translation would change the hash
    path = repo.root / "models/a/requirements.lock"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    lock = known_lock(repo.root, ModelRef("a", "models/a", None))
    assert lock is not None
    assert lock.hash == hashlib.sha256(data).hexdigest()
    assert lock.path == path


def test_nothing_is_cached_before_a_build(git_repo: Callable[..., GitRepo]) -> None:
    repo = git_repo()
    repo.write("models/a/requirements.txt", "six==1.16.0\n")
    model = ModelRef("a", "models/a", None)
    assert known_lock(repo.root, model) is None  # would need resolving: never done here
    assert cached_environment(repo.root, model) is None


def test_a_folder_without_the_marker_is_no_environment(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    assert not is_complete(tmp_path)
    (tmp_path / ".modelci-env.json").write_text("{}")
    assert is_complete(tmp_path)


def complete_env(path: Path, label: str) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").write_text("")
    (path / ".modelci-env.json").write_text(label)
    return path


def test_the_loser_of_a_rename_race_keeps_the_winner(tmp_path: Path) -> None:
    from modelci.envs.uv import _move_into_place

    final = complete_env(tmp_path / "env", "winner")
    _move_into_place(complete_env(tmp_path / ".env.tmp", "loser"), final)
    assert (final / ".modelci-env.json").read_text() == "winner"


def test_an_incomplete_folder_in_the_way_is_replaced(tmp_path: Path) -> None:
    from modelci.envs.uv import _move_into_place

    final = tmp_path / "env"
    (final / "lib").mkdir(parents=True)  # a folder without the marker: not an environment
    _move_into_place(complete_env(tmp_path / ".env.tmp", "new"), final)
    assert (final / ".modelci-env.json").read_text() == "new"
    assert not (final / "lib").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]


def test_the_lock_cache_key_follows_files_included_with_r_and_c(tmp_path: Path) -> None:
    from modelci.envs.locks import _lock_cache_path

    model = tmp_path / "models/a"
    model.mkdir(parents=True)
    (tmp_path / "common.txt").write_text("six==1.16.0\n-r common.txt\n")  # includes itself
    (model / "constraints.txt").write_text("six<2\n")
    requirements = model / "requirements.txt"
    requirements.write_text("-r ../../common.txt\n--constraint=constraints.txt\nrequests  # x\n")
    first = _lock_cache_path(tmp_path, requirements)
    assert _lock_cache_path(tmp_path, requirements) == first

    (tmp_path / "common.txt").write_text("six==1.17.0\n")
    second = _lock_cache_path(tmp_path, requirements)
    assert second != first
    (model / "constraints.txt").write_text("six<1.17\n")
    third = _lock_cache_path(tmp_path, requirements)
    assert third not in (first, second)
    (model / "constraints.txt").unlink()  # a missing include still counts, by its name
    assert _lock_cache_path(tmp_path, requirements) not in (first, second, third)


def test_the_lock_reader_joins_continuations_and_reads_pins_with_extras_and_markers() -> None:
    from modelci.envs.lockfile import requirements

    lock = (
        "# comment\n"
        "Foo_Bar[fast]==1.0 ; python_version >= '3.8' \\\n"
        "    --hash=sha256:aa\n"
        "six==1.16.0  # via something\n"
        "-e ./local\n"
    )
    assert requirements(lock) == [
        "Foo_Bar[fast]==1.0 ; python_version >= '3.8' --hash=sha256:aa",
        "six==1.16.0",
        "-e ./local",
    ]
    assert lock_pins(lock) == {"foo-bar": "1.0", "six": "1.16.0"}


def test_a_dependency_only_of_an_extra_is_not_a_serving_pin() -> None:
    from modelci.envs.serving import _EXTRA_MARKER

    assert _EXTRA_MARKER.search(' extra == "standard"')
    assert _EXTRA_MARKER.search(' python_version < "3.12" and (extra == "x")')
    assert not _EXTRA_MARKER.search(' sys_platform != "win32"')
    assert not _EXTRA_MARKER.search(' platform_release == "extra-1"')


def test_the_sweep_removes_a_build_folder_once_no_build_holds_its_lock(tmp_path: Path) -> None:
    from modelci.envs.uv import _claimed, _sweep_stale

    running = tmp_path / ".aaaa-1-1.tmp"
    killed = tmp_path / ".bbbb-2-2.tmp"
    unlocked = tmp_path / ".cccc-3-3.tmp"  # from before lock files: kept for a day
    for folder in (running, killed, unlocked):
        folder.mkdir()
    (tmp_path / ".bbbb-2-2.tmp.lock").touch()  # its build is gone: nobody holds it
    (tmp_path / ".dddd-4-4.tmp.lock").touch()  # a build killed as it cleaned up
    with _claimed(running):
        _sweep_stale(tmp_path)
        assert running.is_dir() and (tmp_path / ".aaaa-1-1.tmp.lock").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".aaaa-1-1.tmp", ".cccc-3-3.tmp"]
