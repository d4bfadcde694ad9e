"""A version server as a container of its image (`[deploy] backend = "container"`): the image's
`serve` on port 8080, published on 127.0.0.1 only (slirp4netns with podman, never a bridge
network), with the version's artifact mounted read-only at /opt/ml/model."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from modelci.envs.docker import PORT

MODEL_DIR = "/opt/ml/model"
METADATA = "/opt/ml/metadata.json"


def container_name(endpoint: str, version: str) -> str:
    """A name no other container has: the endpoint, the version, and a random suffix."""
    return f"modelci-{endpoint}-{version}-{uuid.uuid4().hex[:8]}"


def run_command(
    engine: list[str], image: str, name: str, port: int, model_dir: str, metadata: Path
) -> list[str]:
    """`<engine> run` of the image's `serve`, in the foreground (the host watches the client,
    whose end is the container's)."""
    network = ["--network=slirp4netns"] if Path(engine[0]).name == "podman" else []
    return [
        *engine,
        "run",
        "--rm",
        "--name",
        name,
        *network,
        "-p",
        f"127.0.0.1:{port}:{PORT}",
        "-v",
        f"{model_dir}:{MODEL_DIR}:ro,z",
        "-v",
        f"{metadata}:{METADATA}:ro,z",
        image,
        "serve",
        "--metadata-file",
        METADATA,
    ]


def remove(engine: list[str], name: str, grace_s: float, env: dict[str, str]) -> None:
    """Stop and remove the container (SIGTERM, then SIGKILL after `grace_s`); gone already is
    fine."""
    subprocess.run(
        [*engine, "rm", "-f", "-t", str(int(grace_s)), name],
        capture_output=True,
        env=env,
        check=False,
    )
