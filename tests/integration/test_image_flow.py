"""Real images: podman builds the toy's image FROM the base image made from Debian packages,
pushes it to a real OCI registry (docker-registry), pulls it back by digest; a code-only change
rebuilds on the cached lock layer; a push that fails says so; `latest` moves on release."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from modelci.envs import retag
from modelci.envs.baseimage import TAG, ensure_base_image
from modelci.envs.engine import Engine
from modelci.registry import open_registry
from tests.support.images import BuiltImage, image_environ, layers, run_modelci
from tests.support.ports import free_port

pytestmark = [pytest.mark.podman, pytest.mark.oci, pytest.mark.slow]


def test_base_image_is_made_once(podman: Engine, base_image: str) -> None:
    assert base_image == TAG and podman.has_image(TAG)
    again = ensure_base_image(podman)
    assert again.tag == TAG and again.built is False  # found, not made again
    done = podman.run(
        [
            "run",
            "--rm",
            "--network=none",
            TAG,
            "python3",
            "-c",
            "import ssl, venv, sys; print(sys.version_info[:2])",
        ],
        what="run",
    )
    assert done.strip() == "(3, 11)"


def test_build_push_and_pull_back_by_digest(podman: Engine, toy_image: BuiltImage) -> None:
    commit = toy_image.commit
    assert toy_image.tag == f"{toy_image.registry}/toy:{commit[:12]}"
    assert toy_image.digest.startswith("sha256:")
    host, _, prefix = toy_image.registry.partition("/")
    manifest = httpx.get(
        f"http://{host}/v2/{prefix}/toy/manifests/{commit[:12]}",
        headers={
            "accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    assert manifest.status_code == 200
    assert manifest.headers["docker-content-digest"] == toy_image.digest

    by_digest = f"{toy_image.registry}/toy@{toy_image.digest}"
    podman.pull(by_digest)
    assert podman.label(by_digest, "org.opencontainers.image.revision") == commit
    assert podman.label(by_digest, "org.opencontainers.image.version") == f"toy-{commit[:12]}"
    # SageMaker's contract inside: train and serve on PATH, /opt/ml/code, the locked packages
    listing = podman.run(
        [
            "run",
            "--rm",
            "--network=none",
            by_digest,
            "sh",
            "-c",
            "command -v train && command -v serve && ls /opt/ml/code"
            " && python -c 'import starlette, modelci'",
        ],
        what="run",
    )
    assert "/opt/program/train" in listing and "/opt/program/serve" in listing
    assert "train.py" in listing and "inference.py" in listing


def test_a_code_only_change_reuses_the_lock_layer(
    podman: Engine, toy_image: BuiltImage, base_image: str
) -> None:
    repo = toy_image.repo
    first = layers(podman, toy_image.tag)
    train = repo.root / "models/toy/train.py"
    train.write_text(train.read_text() + "# a code-only change\n")
    commit = repo.commit("code only")
    # a registry of its own: the session's toy image stays as it was for the other tests
    done = run_modelci(
        repo.root, image_environ(base_image, "modelci.local"), "build", "toy", "--image", "--json"
    )
    assert done.returncode == 0, done.stderr
    tag = json.loads(done.stdout)["environments"][0]["image"]["tag"]
    assert tag == f"modelci.local/toy:{commit[:12]}"
    second = layers(podman, tag)
    base = layers(podman, base_image)
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    # the base, the lock files and the installed dependencies are the same layers
    assert shared >= len(base) + 2
    assert first != second and len(first) == len(second)


def test_a_push_that_fails_says_so(toy_image: BuiltImage, base_image: str, tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}/ml"  # nothing listens there
    done = run_modelci(
        toy_image.repo.root,
        image_environ(base_image, nowhere),
        "build",
        "toy",
        "--image",
        "--push",
        "--json",
    )
    assert done.returncode == 1
    message = json.loads(done.stdout)["error"]["message"]
    assert f"push of {nowhere}/toy:" in message


def test_latest_moves_to_the_released_image(toy_image: BuiltImage) -> None:
    commit = toy_image.commit
    moved = retag.follow_image_alias("toy", commit, "latest", registry=toy_image.registry)
    host, _, prefix = toy_image.registry.partition("/")
    latest = httpx.get(
        f"http://{host}/v2/{prefix}/toy/manifests/latest",
        headers={
            "accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    assert latest.status_code == 200
    assert moved == latest.headers["docker-content-digest"]


def clone_at(source: Path, commit: str, destination: Path) -> Path:
    """A clone of `source` at `commit` (nothing of its `.modelci/` comes along)."""
    subprocess.run(["git", "clone", "-q", str(source), str(destination)], check=True)
    subprocess.run(["git", "-C", str(destination), "checkout", "-q", commit], check=True)
    return destination


def test_training_in_the_image_makes_the_local_bytes(
    toy_image: BuiltImage, base_image: str, tmp_path: Path
) -> None:
    artifacts: dict[str, str] = {}
    for backend in ("container", "local"):
        root = clone_at(toy_image.repo.root, toy_image.commit, tmp_path / backend)
        environ = image_environ(base_image, toy_image.registry) | {"MODELCI_TRAIN_BACKEND": backend}
        done = run_modelci(root, environ, "train", "toy", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        trained = json.loads(done.stdout)["versions"][0]
        assert trained["status"] == "ready" and trained["cached"] is False
        artifacts[backend] = trained["artifact"]["sha256"]
        if backend == "container":
            job = Path(trained["job_dir"])
            # /opt/ml as SageMaker lays it out, filled in by the job inside the container
            for name in ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"):
                assert (job / "input/config" / name).is_file()
            assert (job / "input/data/train/train.csv").is_file()
            assert json.loads((job / "model/model.json").read_text()) == {"bias": 0.5}
            # pushing the trained version's image records its digest with the version
            pushed = run_modelci(root, environ, "build", "toy", "--image", "--push", "--json")
            assert pushed.returncode == 0, pushed.stderr
            digest = json.loads(pushed.stdout)["environments"][0]["image"]["digest"]
            with open_registry("sqlite:///.modelci/registry.db", root) as registry:
                record = registry.get_version(trained["version"])
            assert record is not None
            assert record.details["image"] == f"{toy_image.registry}/toy@{digest}"
    assert artifacts["container"] == artifacts["local"]


def test_a_job_past_its_timeout_is_stopped_with_its_container(
    podman: Engine, toy_image: BuiltImage, base_image: str, tmp_path: Path
) -> None:
    root = clone_at(toy_image.repo.root, toy_image.commit, tmp_path / "slow")
    spec = root / "models/toy/model.toml"
    spec.write_text(spec.read_text().replace("[train]\n", "[train]\ntimeout = 3\n"))
    (root / "models/toy/train.py").write_text(
        "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    )
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "a job that hangs"], check=True)
    environ = image_environ(base_image, "modelci.local") | {"MODELCI_TRAIN_BACKEND": "container"}
    done = run_modelci(root, environ, "train", "toy", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    [outcome] = json.loads(done.stdout)["versions"]
    assert outcome["status"] == "failed" and "timed out after 3 s" in outcome["reason"]
    left = podman.run(
        ["ps", "-a", "--filter", "name=modelci-train-", "--format", "{{.Names}}"], what="ps"
    )
    assert left.strip() == ""  # the container went with the job
