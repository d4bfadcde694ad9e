"""Real container images for tests: podman (scripts/ensure-podman), the base image made from
Debian packages once and kept in podman's storage across sessions, and the toy model's image
built and pushed once per session to the session's OCI registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modelci.envs.engine import Engine
from tests.support.repos import GitRepo
from tests.support.toy import SERVED_SPEC, write_toy

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


@dataclass(frozen=True)
class BuiltImage:
    """The toy's repository, and its image as `modelci build --image --push` reported it."""

    repo: GitRepo
    commit: str  # the commit built (the repository's HEAD may move on)
    registry: str  # host/prefix
    tag: str
    digest: str


def image_environ(base: str, registry: str) -> dict[str, str]:
    """The environment a `modelci` process builds the toy's image in."""
    return (
        os.environ
        | GIT_IDENTITY
        | {
            "MODELCI_IMAGE_BASE": base,
            "MODELCI_IMAGE_REGISTRY": registry,
            "NO_COLOR": "1",
        }
    )


def run_modelci(
    root: Path, environ: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`modelci -C ROOT ARGS...` as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "modelci", "-C", str(root), *args],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )


def build_toy_image(folder: Path, base: str, registry: str) -> BuiltImage:
    """A committed toy repository in `folder`, its image built and pushed to `registry`."""
    folder.mkdir(parents=True)
    repo = GitRepo(folder)
    repo.git("init", "-q", "-b", "main")
    write_toy(repo, SERVED_SPEC.format(bias=0.5))
    repo.git("add", "-A")
    subprocess.run(
        ["git", "-C", str(folder), "commit", "-q", "-m", "toy"],
        env=os.environ | GIT_IDENTITY,
        check=True,
    )
    done = run_modelci(
        folder, image_environ(base, registry), "build", "toy", "--image", "--push", "--json"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    image = json.loads(done.stdout)["environments"][0]["image"]
    return BuiltImage(repo, repo.sha(), registry, image["tag"], image["digest"])


def layers(engine: Engine, reference: str) -> list[str]:
    """The digests of an image's layers, base first."""
    out = engine.run(
        ["image", "inspect", "--format", "{{json .RootFS.Layers}}", reference], what="inspect"
    )
    found: list[str] = json.loads(out)
    return found
