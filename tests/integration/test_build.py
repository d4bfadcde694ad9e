"""`modelci build` with the real uv: locks with hashes, virtualenvs cached by hash, committed
locks, unresolvable requirements, the shared default environment, and images.

uv's package cache: every test has its own HOME (tests/conftest.py), where uv would start an
empty cache and download every wheel again. So UV_CACHE_DIR points at the cache of the user
running the suite, read once at import, before any HOME is swapped: the packages `scripts/setup`
already fetched for modelci's own environment (numpy, starlette, ...) are there, repeated runs
download nothing, and uv's cache is safe for concurrent use. Resolving still asks the index
(`uv pip compile` refreshes its metadata when stale), so these tests need PyPI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelci.envs.uv import MARKER
from tests.support.cli import CliResult
from tests.support.engines import fake_engines
from tests.support.repos import GitRepo, add_model


def _user_uv_cache() -> str:
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    from uv import find_uv_bin

    done = subprocess.run(
        [find_uv_bin(), "cache", "dir"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or str(Path.home() / ".cache" / "uv")


USER_UV_CACHE = _user_uv_cache()
TINY = "six==1.16.0\n"
Run = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def uv_cache(isolated_home: Path) -> Iterator[None]:
    """uv's cache of the real user (see the module's docstring); set after HOME is isolated."""
    os.environ["UV_CACHE_DIR"] = USER_UV_CACHE
    yield


def tiny_repo(git_repo: Callable[..., GitRepo], requirements: str = TINY) -> GitRepo:
    repo = git_repo()
    add_model(repo, "models/tiny")
    repo.write("models/tiny/requirements.txt", requirements)
    repo.commit("tiny model")
    return repo


def env_python(result: CliResult) -> Path:
    return Path(result.json()["environments"][0]["python"])


def imports(python: Path, module: str) -> bool:
    done = subprocess.run(
        [str(python), "-c", f"import {module}"],
        capture_output=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    return done.returncode == 0


def test_build_locks_creates_then_reuses(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = tiny_repo(git_repo)
    first = modelci("-C", repo.root, "build", "tiny", "--json")
    assert first.code == 0, first.stdout + first.stderr
    entry = first.json()["environments"][0]
    assert entry["model"] == "tiny" and entry["status"] == "built" and entry["image"] is None
    env = Path(entry["path"])
    assert env == repo.root / ".modelci/envs" / entry["env_hash"]
    assert (env / MARKER).is_file()
    lock = Path(entry["lock"])
    assert lock.parent == repo.root / ".modelci/locks"
    text = lock.read_text()
    assert "six==1.16.0" in text and "--hash=sha256:" in text
    assert entry["lock_hash"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    marker = json.loads((env / MARKER).read_text())
    assert marker["lock_hash"] == entry["lock_hash"] and marker["env_hash"] == entry["env_hash"]
    assert [p.name for p in env.parent.iterdir()] == [env.name]  # no temporary folder left

    python = Path(entry["python"])
    for module in ("six", "starlette", "uvicorn", "prometheus_client", "numpy"):
        assert imports(python, module), module
    assert not imports(python, "modelci")  # the training job never gets modelci for free

    # how fast a cache hit is, bench/env_bench.py measures (a test asserts no wall time)
    second = modelci("-C", repo.root, "build", "tiny")
    assert second.code == 0, second.stderr
    assert "tiny: cached" in second.stdout
    again = modelci("-C", repo.root, "build", "tiny", "--json").json()["environments"][0]
    assert again == entry | {"status": "cached"}


def test_a_cache_hit_reads_validated_specs_without_pydantic(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    """build's hit reads each model.toml as spec.py validated it, from the spec cache (the
    first build validated each spec into it): it loads no pydantic."""
    repo = tiny_repo(git_repo)
    assert modelci("-C", repo.root, "build", "tiny").code == 0
    code = (
        "import json, sys\n"
        "from modelci.cli import run\n"
        f"code = run(['-C', {str(repo.root)!r}, 'build', 'tiny', '--json'])\n"
        "print(json.dumps([code, 'pydantic' in sys.modules]))\n"
    )

    def build_in_a_new_process() -> list[object]:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        *document, loaded = done.stdout.strip().splitlines()
        [entry] = json.loads("\n".join(document))["environments"]
        assert entry["status"] == "cached", done.stderr
        return list(json.loads(loaded))

    assert build_in_a_new_process() == [0, False]


def test_write_lock_then_the_committed_lock_is_used_verbatim(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = tiny_repo(git_repo)
    written = modelci("-C", repo.root, "build", "tiny", "--write-lock", "--json")
    assert written.code == 0, written.stdout + written.stderr
    entry = written.json()["environments"][0]
    lock = repo.root / "models/tiny/requirements.lock"
    assert entry["lock"] == str(lock)
    assert "--hash=sha256:" in lock.read_text()
    assert entry["lock_hash"] == hashlib.sha256(lock.read_bytes()).hexdigest()

    reused = modelci("-C", repo.root, "build", "tiny", "--json").json()["environments"][0]
    assert reused["status"] == "cached" and reused["lock"] == str(lock)

    # A committed lock is taken as it is, whatever requirements.txt says now.
    repo.write("models/tiny/requirements.txt", "nosuchpackage-xyz==1\n")
    edited = lock.read_text().replace("# This file", "# Reviewed by hand.\n# This file")
    lock.write_text(edited)
    repo.commit("lock committed")
    verbatim = modelci("-C", repo.root, "build", "tiny", "--json")
    assert verbatim.code == 0, verbatim.stdout
    entry = verbatim.json()["environments"][0]
    assert entry["status"] == "built" and entry["lock"] == str(lock)
    assert entry["lock_hash"] == hashlib.sha256(edited.encode()).hexdigest()
    assert (Path(entry["path"]) / "modelci-lock.txt").read_text() == edited


def test_unresolvable_requirements_fail_with_uv_reason(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = tiny_repo(git_repo, "nosuchpackage-xyz==1\n")
    result = modelci("-C", repo.root, "build", "tiny", "--json")
    assert result.code == 1
    error = result.json()["error"]
    assert error["type"] == "EnvironmentFailed"
    assert error["file"] == "models/tiny/requirements.txt"
    assert "nosuchpackage-xyz" in error["message"]
    assert "uv could not resolve the requirements" in error["message"]
    envs = repo.root / ".modelci/envs"
    assert not envs.exists() or not list(envs.iterdir())
    human = modelci("-C", repo.root, "build", "tiny")
    assert human.code == 1 and "error:" in human.stderr and "nosuchpackage-xyz" in human.stderr
    assert "Traceback" not in human.stderr


def test_a_half_built_environment_is_not_taken_for_cached(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = tiny_repo(git_repo)
    entry = modelci("-C", repo.root, "build", "tiny", "--json").json()["environments"][0]
    (Path(entry["path"]) / MARKER).unlink()  # as if a build had stopped before finishing
    rebuilt = modelci("-C", repo.root, "build", "tiny", "--json").json()["environments"][0]
    assert rebuilt["status"] == "built" and rebuilt["path"] == entry["path"]
    assert (Path(entry["path"]) / MARKER).is_file()


def test_concurrent_builds_of_one_environment(git_repo: Callable[..., GitRepo]) -> None:
    repo = tiny_repo(git_repo)
    # Resolve first, so that both builds race on the environment itself.
    command = [
        str(Path(sys.executable).with_name("modelci")),
        "-C",
        str(repo.root),
        "build",
        "tiny",
        "--json",
    ]
    subprocess.run([*command, "--write-lock"], check=True, capture_output=True)
    repo.commit("lock")
    shutil.rmtree(repo.root / ".modelci/envs")
    builds = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [b.communicate(timeout=300) for b in builds]
    assert [b.returncode for b in builds] == [0, 0], results
    entries = [json.loads(out)["environments"][0] for out, _ in results]
    assert entries[0]["path"] == entries[1]["path"]
    envs = repo.root / ".modelci/envs"
    assert [p.name for p in envs.iterdir()] == [entries[0]["env_hash"]]
    assert imports(Path(entries[0]["python"]), "six")


@pytest.mark.slow
def test_models_without_requirements_share_the_default_environment(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo()
    add_model(repo, "models/one")
    add_model(repo, "models/two")
    repo.commit("two models")
    first = modelci("-C", repo.root, "build", "one", "--json")
    assert first.code == 0, first.stdout + first.stderr
    second = modelci("-C", repo.root, "build", "two", "--json")
    one, two = first.json()["environments"][0], second.json()["environments"][0]
    assert one["status"] == "built" and two["status"] == "cached"
    assert one["env_hash"] == two["env_hash"] and one["lock_hash"] == two["lock_hash"]
    for module in ("sklearn", "pandas", "joblib", "starlette"):
        assert imports(Path(one["python"]), module), module


@pytest.mark.slow
def test_example_models_build_and_share_one_lock(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    result = modelci("-C", repo.root, "build", "churn", "price", "--json")
    assert result.code == 0, result.stdout + result.stderr
    churn, price = result.json()["environments"]
    assert churn["status"] == "built" and price["status"] == "cached"
    assert churn["env_hash"] == price["env_hash"]  # the same requirements: one environment
    assert imports(Path(churn["python"]), "sklearn")


def test_unknown_model_is_a_usage_error(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo(examples=True)
    result = modelci("-C", repo.root, "build", "chrun", "--json")
    assert result.code == 2
    message = result.json()["error"]["message"]
    assert "no model named 'chrun'" in message and "churn, price" in message
    assert not (repo.root / ".modelci/envs").exists()
    assert modelci("-C", repo.root, "build").code == 2  # MODEL is required


def test_image_without_an_engine_keeps_the_context(
    git_repo: Callable[..., GitRepo],
    modelci: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = tiny_repo(git_repo)
    fake_engines(tmp_path / "bin", info_exit=1)  # clients whose daemon does not answer
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = modelci("-C", repo.root, "build", "tiny", "--image", "--registry", "reg.example/ml")
    assert result.code == 2, result.stderr
    sha12 = repo.sha()[:12]
    context = repo.root / ".modelci/images" / f"tiny-{sha12}"
    assert "no container engine was found" in result.stderr
    assert f"docker build -t reg.example/ml/tiny:{sha12} {context}" in result.stderr
    assert "Traceback" not in result.stderr
    assert (context / "Dockerfile").is_file() and (context / "code/train.py").is_file()

    as_json = modelci("-C", repo.root, "build", "tiny", "--image", "--json")
    assert as_json.code == 2
    assert as_json.json()["error"]["type"] == "ConfigError"
    assert f"modelci.local/tiny:{sha12}" in as_json.json()["error"]["message"]
