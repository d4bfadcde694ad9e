"""A version server as a container of its image (`[deploy] backend = "container"`): the image's
`serve` on port 8080, published on 127.0.0.1 only (slirp4netns with podman, never a bridge
network), with the version's artifact mounted read-only at /opt/ml/model."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from modelci.envs.docker import PORT
from modelci.workspace import Workspace

MODEL_DIR = "/opt/ml/model"
METADATA = "/opt/ml/metadata.json"
OWNER_LABEL = "modelci.owner"  # the host's log folder: one host per state folder at a time


def container_name(endpoint: str, version: str) -> str:
    """A name no other container has: the endpoint, the version, and a random suffix."""
    return f"modelci-{endpoint}-{version}-{uuid.uuid4().hex[:8]}"


def run_command(
    engine: list[str],
    image: str,
    name: str,
    port: int,
    model_dir: str,
    metadata: Path,
    owner: str,
) -> list[str]:
    """`<engine> run` of the image's `serve`, in the foreground (the host watches the client,
    whose end is the container's), labelled with its `owner` (see `sweep`)."""
    network = ["--network=slirp4netns"] if Path(engine[0]).name == "podman" else []
    return [
        *engine,
        "run",
        "--rm",
        "--name",
        name,
        "--label",
        f"{OWNER_LABEL}={owner}",
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


def sweep(engine: list[str], owner: str, env: dict[str, str]) -> list[str]:
    """Remove every container labelled with `owner`, running or not; their names. A host
    calls it as it starts, before it runs any container of its own: containers it finds were
    started by a host of the same state folder that was killed (SIGKILL leaves the engine's
    container running) and nothing will stop them otherwise. An engine that does not answer
    removes nothing."""
    listed = subprocess.run(
        [*engine, "ps", "-a", "--filter", f"label={OWNER_LABEL}={owner}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    names = listed.stdout.split() if listed.returncode == 0 else []
    for name in names:
        remove(engine, name, 0, env)
    return names


def sweep_for(workspace: Workspace) -> list[str]:
    """`sweep` the containers of the host of `workspace` when its endpoints run as containers
    (`[deploy] backend = "container"`); their names."""
    if workspace.project.deploy.backend != "container":
        return []
    from modelci.envs.engine import find_engine

    engine = find_engine(workspace.project.image.engine)
    if engine is None:
        return []
    logs = str(workspace.state_dir / "serve" / "logs")
    return sweep([engine.executable], logs, engine.environ())
