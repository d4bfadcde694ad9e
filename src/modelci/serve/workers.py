"""The server process of one deployed version: started in the model's own environment on a
free loopback port, health-checked, drained and stopped by the endpoint host."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError
from modelci.processes import DIE_WITH_PARENT, stop_group
from modelci.serve.proxy import Upstream, UpstreamError

if TYPE_CHECKING:
    from modelci.registry.base import VersionRecord
    from modelci.workspace import Workspace

STOP_GRACE_S = 10.0
# What a version server gets of the host's environment: what a process needs to run, find its
# libraries and certificates and size its thread pools; never the host's secrets (registry
# URL, cloud keys, the serving token).
INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CUDA_VISIBLE_DEVICES",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    }
)


def server_environment(environ: dict[str, str], runtime: str) -> dict[str, str]:
    """The variables a version server starts with: an allow-list of the host's, and
    modelci's runtime on its PYTHONPATH."""
    env = {k: v for k, v in environ.items() if k in INHERITED or k.startswith("LC_")}
    env["PYTHONPATH"] = runtime
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class LaunchSpec:
    """How to start one version's server."""

    endpoint: str
    model: str
    environment: str
    version: str
    commit: str
    python: str
    runtime: str  # PYTHONPATH entry holding modelci's runtime parts
    model_dir: str
    artifact_sha256: str
    root: str  # the repository's, whose store holds the artifact
    handler: str | None
    workers: int
    batch_max_size: int
    batch_max_wait_ms: float
    log_dir: str
    image: str | None = None  # `[deploy] backend = "container"`: served by this image
    engine: tuple[str, ...] = ()  # the container engine's command
    engine_env: dict[str, str] | None = None
    smoke: tuple[bytes, str] | None = None  # sent by a reporting host before routing to it
    isolation: str = "process"  # "shared": served by its environment's shared server
    idle_unload_s: float = 0.0  # shared: unloaded after this long without a request
    max_loaded: int = 0  # shared: the most versions its server keeps loaded (0: any)
    capture_percent: float = 0.0  # `[serve.capture] percent`: the share the host records


def packing(workspace: Workspace, chosen: str | None, workers: int) -> dict[str, Any]:
    """The LaunchSpec fields saying whether a version shares its environment's server: the
    model's `[serve] isolation`, else the project's; several workers need their own."""
    serve = workspace.project.serve
    isolation = chosen or serve.isolation
    return {
        "isolation": "shared" if isolation == "shared" and workers == 1 else "process",
        "idle_unload_s": float(serve.idle_unload),
        "max_loaded": serve.max_loaded,
    }


def launch_spec(
    following: Workspace, endpoint: str, model: str, environment: str, version: str
) -> LaunchSpec:
    """Everything needed to start a version: its environment, model folder and handler, from
    the checkout, or from the version's stored bundle for a host with none."""
    from modelci.train.unpacked import version_folder

    workspace = type(following)(following.root)  # fresh settings and specs each time
    with workspace.registry() as registry:
        record = registry.get_version(version)
    if record is None or not record.artifact_sha256:
        raise ConfigError(f"version {version} has no artifact to serve")
    if workspace.detached:
        return _from_bundle(workspace, record, endpoint, environment)
    dirty = bool(record.details.get("dirty"))
    model_dir = version_folder(workspace, record)
    spec = spare_spec(workspace, endpoint, model, environment, version, record.commit, dirty)
    return replace(spec, model_dir=str(model_dir), artifact_sha256=record.artifact_sha256)


def spare_spec(
    workspace: Workspace,
    endpoint: str,
    model: str,
    environment: str,
    version: str,
    commit: str,
    dirty: bool = False,
) -> LaunchSpec:
    """Everything needed to start `version` (made from `commit`) but its model, from the
    checkout: `model_dir` and `artifact_sha256` are empty (see `launch_spec`)."""
    from modelci.deploy.smoke import smoke_request
    from modelci.envs.runtime_copy import runtime_dir
    from modelci.envs.uv import ensure_environment
    from modelci.train.jobs import export, spec_at

    spec = spec_at(workspace, model, commit, dirty)
    if workspace.project.deploy.backend == "container":
        from modelci.envs.modelimage import model_image

        engine, image = model_image(workspace, model, commit)
        return LaunchSpec(
            endpoint=endpoint,
            model=model,
            environment=environment,
            version=version,
            commit=commit,
            python="",
            runtime="",
            model_dir="",
            artifact_sha256="",
            root=str(workspace.root),
            handler=None,  # the image's serve names the handler in its code
            workers=spec.file.serve.workers,
            batch_max_size=spec.file.serve.batch.max_size,
            batch_max_wait_ms=spec.file.serve.batch.max_wait_ms,
            log_dir=str(workspace.state_dir / "serve" / "logs"),
            image=image,
            engine=(engine.executable,),
            engine_env=engine.environ(),
            smoke=smoke_request(workspace, spec),
            capture_percent=spec.file.serve.capture.percent,
        )
    env = ensure_environment(workspace.root, spec)
    handler = None
    if spec.file.serve.handler:
        code = workspace.state_dir / "serve" / "code" / version
        if not code.exists():
            export(workspace.root, None if dirty else commit, [spec.folder], code)
        handler = str(code / spec.folder / spec.file.serve.handler)
    return LaunchSpec(
        endpoint=endpoint,
        model=model,
        environment=environment,
        version=version,
        commit=commit,
        python=str(env.python),
        runtime=str(runtime_dir(workspace.state_dir)),
        model_dir="",
        artifact_sha256="",
        root=str(workspace.root),
        handler=handler,
        workers=spec.file.serve.workers,
        batch_max_size=spec.file.serve.batch.max_size,
        batch_max_wait_ms=spec.file.serve.batch.max_wait_ms,
        log_dir=str(workspace.state_dir / "serve" / "logs"),
        smoke=smoke_request(workspace, spec),
        **packing(workspace, spec.file.serve.isolation, spec.file.serve.workers),
        capture_percent=spec.file.serve.capture.percent,
    )


def _from_bundle(
    workspace: Workspace, record: VersionRecord, endpoint: str, environment: str
) -> LaunchSpec:
    """A version's launch from what the registry and store hold: its bundle (code, settings,
    smoke request), its lock (the environment, built once per hash) and its artifact."""
    from modelci.bundle import load_bundle
    from modelci.envs.runtime_copy import runtime_dir
    from modelci.envs.uv import locked_environment
    from modelci.train.unpacked import version_folder

    bundle = load_bundle(workspace.store(), record, workspace.state_dir / "serve" / "bundles")
    env = locked_environment(workspace.root, record.model, bundle.lock_text)
    assert record.artifact_sha256 is not None
    return LaunchSpec(
        endpoint=endpoint,
        model=record.model,
        environment=environment,
        version=record.version,
        commit=record.commit,
        python=str(env.python),
        runtime=str(runtime_dir(workspace.state_dir)),
        model_dir=str(version_folder(workspace, record)),
        artifact_sha256=record.artifact_sha256,
        root=str(workspace.root),
        handler=bundle.handler,
        workers=bundle.workers,
        batch_max_size=bundle.batch_max_size,
        batch_max_wait_ms=bundle.batch_max_wait_ms,
        log_dir=str(workspace.state_dir / "serve" / "logs"),
        smoke=bundle.smoke,
        **packing(workspace, bundle.isolation, bundle.workers),
        capture_percent=bundle.capture_percent,
    )


def _metadata(spec: LaunchSpec) -> Path:
    """The file naming what a version server serves (its /metadata), written for `spec`."""
    path = Path(spec.log_dir) / f"{spec.endpoint}-{spec.version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ("model", "version", "commit", "environment", "endpoint")
    path.write_text(json.dumps({name: getattr(spec, name) for name in fields}))
    return path


def verify_launch(workspace: Workspace, spec: LaunchSpec) -> None:
    """Verify again the artifact and the unpacked copy a spec serves, before a restart serves
    them (ArtifactCorrupted naming the version and the file)."""
    from modelci.train.unpacked import materialize

    materialize(
        workspace.store(), spec.artifact_sha256, Path(spec.model_dir).parent, version=spec.version
    )


@dataclass
class VersionServer:
    """A running version server and the requests the host has in flight to it."""

    spec: LaunchSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    upstream: Upstream
    started_at: float = field(default_factory=time.time)
    inflight: int = 0
    healthy: bool = False
    stopping: bool = False
    restarts: int = 0
    container: str | None = None
    spare: bool = False  # started before its model was stored (modelci.serve.prepared)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def launch(cls, spec: LaunchSpec, restarts: int = 0, *, spare: bool = False) -> VersionServer:
        """Start the server process (it is not ready yet: see `wait_ready`). Call it from a
        thread that lives as long as the host: the server dies with the thread that made it.
        A `spare` (one worker, no image) loads its libraries and waits for `assign`."""
        port = free_port()
        logs = Path(spec.log_dir)
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{spec.endpoint}-{spec.version}.log"
        metadata = _metadata(spec)
        if spec.image:
            return cls._launch_container(spec, port, log_path, metadata, restarts)
        command = [
            *DIE_WITH_PARENT,  # a host killed outright takes its version servers with it
            spec.python,
            "-m",
            "modelci.runtime.server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(spec.workers),
            *(
                ["--model-from-stdin"]
                if spare
                else ["--model-dir", spec.model_dir, "--metadata-file", str(metadata)]
            ),
            "--batch-max-size",
            str(spec.batch_max_size),
            "--batch-max-wait-ms",
            str(spec.batch_max_wait_ms),
        ]
        if spec.handler:
            command += ["--handler", spec.handler]
        env = server_environment(dict(os.environ), spec.runtime)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if spare else subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        upstream = Upstream("127.0.0.1", port)
        return cls(spec, port, process, log_path, upstream, restarts=restarts, spare=spare)

    def assign(self, spec: LaunchSpec) -> None:
        """Give a spare (see `launch`) the model it is to serve: `spec`, the one it was
        launched with but for the model folder. Raises OSError when the spare is gone."""
        metadata = _metadata(spec)
        told = {"model_dir": spec.model_dir, "metadata_file": str(metadata)}
        assert self.process.stdin is not None, "only a spare is assigned a model"
        try:
            self.process.stdin.write(json.dumps(told).encode() + b"\n")
        finally:
            self.process.stdin.close()
        self.spec = spec

    @classmethod
    def _launch_container(
        cls, spec: LaunchSpec, port: int, log_path: Path, metadata: Path, restarts: int
    ) -> VersionServer:
        from modelci.serve import containers

        assert spec.image is not None
        name = containers.container_name(spec.endpoint, spec.version)
        command = containers.run_command(
            list(spec.engine), spec.image, name, port, spec.model_dir, metadata, spec.log_dir
        )
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=spec.engine_env,
                start_new_session=True,
            )
        upstream = Upstream("127.0.0.1", port)
        return cls(spec, port, process, log_path, upstream, restarts=restarts, container=name)

    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_ready(self, timeout: float) -> str | None:
        """Poll /ping until it answers 200; None when ready, else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return f"the server exited with code {self.process.returncode}: {self.log_tail()}"
            try:
                answer = await self.upstream.request("GET", "/ping", timeout=5)
                if answer.status == 200:
                    self.healthy = True
                    return None
            except UpstreamError:
                pass
            await asyncio.sleep(0.05)
        return f"no healthy /ping within {timeout:g} s: {self.log_tail()}"

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    async def drain(self, timeout: float) -> None:
        """Wait for the requests in flight to finish (no new ones come: the route moved)."""
        deadline = time.monotonic() + timeout
        while self.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after a grace period."""
        self.stopping = True
        self.healthy = False
        self.upstream.close()
        if self.container is not None:  # the engine's client may go without its container
            from modelci.serve import containers

            containers.remove(
                list(self.spec.engine), self.container, STOP_GRACE_S, self.spec.engine_env or {}
            )
        stop_group(self.process, STOP_GRACE_S)

    def describe(self) -> dict[str, object]:
        return {
            "version": self.spec.version,
            "model": self.spec.model,
            "environment": self.spec.environment,
            "url": self.url,
            "pid": self.process.pid,
            "isolation": "process",
            "healthy": self.healthy and self.alive(),
            "restarts": self.restarts,
            "inflight": self.inflight,
            "warm_start": self.spare,  # a spare given its model: no cold start at the deploy
        }
