"""The local endpoint host (`modelci serve`): one process per repository that serves every
endpoint the registry points at, at `/endpoints/<endpoint>/invocations`, as AWS's SDK calls
SageMaker. It follows the registry: a new version is started in its own environment,
health-checked, given the new requests, and the old one drained and stopped, so that no
request fails during a swap. A version server that dies is restarted, and its endpoint
answers 503 meanwhile. Runs in modelci's own environment."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelci.errors import ConfigError, ModelciError
from modelci.serve.hoststate import read_state, state_path
from modelci.serve.proxy import UpstreamError
from modelci.serve.workers import LaunchSpec, VersionServer
from modelci.workspace import Workspace

POLL_S = 2.0  # how often the registry is read for changes made elsewhere
MONITOR_S = 0.25  # how often version servers are checked for a crash
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 30.0
FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


class Host:
    """The endpoints, their version servers and the reconciliation with the registry."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.routes: dict[str, VersionServer] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []

    # --- the desired state ---------------------------------------------------------------

    def desired(self) -> dict[str, tuple[str, str, str]]:
        """endpoint -> (model, environment, version), from the registry's pointers."""
        workspace = Workspace(self.workspace.root)  # fresh settings and specs each time
        environments = workspace.project.environments
        if workspace.project.deploy.backend != "local" or not workspace.registry_exists():
            return {}
        with workspace.registry() as registry:
            pointers = registry.pointers()
        wanted: dict[str, tuple[str, str, str]] = {}
        for pointer in pointers:
            if pointer.environment in environments:
                endpoint = pointer.model + environments[pointer.environment].suffix
                wanted[endpoint] = (pointer.model, pointer.environment, pointer.version)
        return wanted

    def launch_spec(self, endpoint: str, model: str, environment: str, version: str) -> LaunchSpec:
        """Everything needed to start a version: its environment, model folder and handler."""
        from modelci.envs.runtime_copy import runtime_dir
        from modelci.envs.uv import ensure_environment
        from modelci.train.artifacts import materialize
        from modelci.train.runner import export, spec_at

        workspace = Workspace(self.workspace.root)
        with workspace.registry() as registry:
            record = registry.get_version(version)
        if record is None or not record.artifact_sha256:
            raise ConfigError(f"version {version} has no artifact to serve")
        dirty = bool(record.details.get("dirty"))
        spec = spec_at(workspace, model, record.commit, dirty)
        env = ensure_environment(workspace.root, spec)
        model_dir = materialize(
            workspace.store(), record.artifact_sha256, workspace.state_dir / "models"
        )
        handler = None
        if spec.file.serve.handler:
            code = workspace.state_dir / "serve" / "code" / version
            if not code.exists():
                export(workspace.root, None if dirty else record.commit, [spec.folder], code)
            handler = str(code / spec.folder / spec.file.serve.handler)
        return LaunchSpec(
            endpoint=endpoint,
            model=model,
            environment=environment,
            version=version,
            commit=record.commit,
            python=str(env.python),
            runtime=str(runtime_dir(workspace.state_dir)),
            model_dir=str(model_dir),
            handler=handler,
            workers=spec.file.serve.workers,
            batch_max_size=spec.file.serve.batch.max_size,
            batch_max_wait_ms=spec.file.serve.batch.max_wait_ms,
            log_dir=str(workspace.state_dir / "serve" / "logs"),
        )

    # --- reconciliation ------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Bring the running servers in line with the registry."""
        async with self.lock:
            try:
                wanted = await asyncio.to_thread(self.desired)
            except ModelciError as error:
                self.failures["*"] = {"error": error.render(), "time": time.time()}
                return
            self.failures.pop("*", None)
            for endpoint, (model, environment, version) in wanted.items():
                current = self.routes.get(endpoint)
                if current is not None and current.spec.version == version:
                    continue
                failed = self.failures.get(endpoint)
                if (
                    failed
                    and failed.get("version") == version
                    and time.time() - failed["time"] < 30
                ):
                    continue  # don't retry a broken version in a tight loop
                await self.swap(endpoint, model, environment, version)
            for endpoint in [e for e in self.failures if e != "*" and e not in wanted]:
                del self.failures[endpoint]  # undeployed: its old failure no longer applies
            for endpoint in [e for e in self.routes if e not in wanted]:
                server = self.routes.pop(endpoint)
                await server.drain(DRAIN_TIMEOUT_S)
                await asyncio.to_thread(server.stop)

    async def swap(
        self, endpoint: str, model: str, environment: str, version: str, restarts: int = 0
    ) -> bool:
        """Start `version`, and once healthy route the endpoint to it and retire the old."""
        try:
            spec = await asyncio.to_thread(self.launch_spec, endpoint, model, environment, version)
            server = await asyncio.to_thread(VersionServer.launch, spec, restarts)
        except ModelciError as error:
            self.failures[endpoint] = {
                "version": version,
                "error": error.render(),
                "time": time.time(),
            }
            return False
        problem = await server.wait_ready(READY_TIMEOUT_S)
        if problem is not None:
            await asyncio.to_thread(server.stop)
            self.failures[endpoint] = {"version": version, "error": problem, "time": time.time()}
            return False
        self.failures.pop(endpoint, None)
        old = self.routes.get(endpoint)
        self.routes[endpoint] = server  # from here on new requests go to the new version
        if old is not None:
            await old.drain(DRAIN_TIMEOUT_S)
            await asyncio.to_thread(old.stop)
        return True

    async def monitor(self) -> None:
        """Restart a version server that died; its endpoint answers 503 meanwhile."""
        while True:
            await asyncio.sleep(MONITOR_S)
            for endpoint, server in list(self.routes.items()):
                if server.stopping or server.alive():
                    continue
                server.healthy = False
                async with self.lock:
                    if self.routes.get(endpoint) is server:
                        spec = server.spec
                        await self.swap(
                            endpoint,
                            spec.model,
                            spec.environment,
                            spec.version,
                            restarts=server.restarts + 1,
                        )

    async def poll(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.reconcile()
            await asyncio.sleep(POLL_S)

    # --- HTTP ----------------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        action = request.path_params.get("action", "invocations")
        body = await request.body() if request.method == "POST" else b""
        headers = {k: v for k in FORWARDED if (v := request.headers.get(k))}
        for attempt in (0, 1):
            server = self.routes.get(endpoint)  # looked up after the body: no await until sent
            if server is None:
                failure = self.failures.get(endpoint)
                message = f"endpoint {endpoint!r} is not deployed"
                if failure:
                    message += f" (its last start failed: {failure['error']})"
                return _json({"message": message}, 404)
            if not server.healthy or not server.alive():
                return _json({"message": f"endpoint {endpoint!r} is restarting"}, 503)
            server.inflight += 1
            try:
                answer = await server.upstream.request(request.method, f"/{action}", body, headers)
            except UpstreamError as error:
                if attempt == 0 and self.routes.get(endpoint) is not server:
                    continue  # swapped while in flight: send it to the new version
                return _json({"message": f"endpoint {endpoint!r} failed: {error}"}, 502)
            finally:
                server.inflight -= 1
            return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
        return _json({"message": "unreachable"}, 500)  # pragma: no cover

    def status(self) -> dict[str, Any]:
        endpoints = {name: server.describe() for name, server in self.routes.items()}
        for name, failure in self.failures.items():
            endpoints.setdefault(name, {"healthy": False})["last_error"] = failure
        return {"endpoints": endpoints, "pid": os.getpid()}

    async def endpoints(self, request: Request) -> Response:
        return _json(self.status())

    async def sync(self, request: Request) -> Response:
        await self.reconcile()
        return _json(self.status())

    async def ping(self, request: Request) -> Response:
        return _json({"status": "ok", "endpoints": len(self.routes)})

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self.tasks = [asyncio.create_task(self.poll()), asyncio.create_task(self.monitor())]
            try:
                yield
            finally:
                for task in self.tasks:
                    task.cancel()
                for server in list(self.routes.values()):
                    await asyncio.to_thread(server.stop)
                self.routes.clear()

        return Starlette(
            routes=[
                Route("/ping", self.ping, methods=["GET"]),
                Route("/-/endpoints", self.endpoints, methods=["GET"]),
                Route("/-/sync", self.sync, methods=["POST"]),
                Route("/endpoints/{endpoint}/invocations", self.invoke, methods=["POST"]),
                Route("/endpoints/{endpoint}/{action:str}", self.invoke, methods=["GET"]),
            ],
            lifespan=lifespan,
        )


def run_host(workspace: Workspace, host: str, port: int) -> None:
    """Serve until stopped; one host per repository (a lock file says whether one runs)."""
    import uvicorn

    from modelci.runtime.protocol import HttpProtocol

    folder = state_path(workspace).parent
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / "host.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        running = read_state(workspace)
        where = f" at {running['url']} (pid {running['pid']})" if running else ""
        raise ConfigError(
            f"an endpoint host already runs for this repository{where}; "
            "stop it with `modelci serve --stop`"
        ) from None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", key="--port") from None
    bound = listener.getsockname()[1]
    url = f"http://{host}:{bound}"
    state = state_path(workspace)
    temporary = state.with_suffix(".tmp")
    temporary.write_text(
        json.dumps(
            {"pid": os.getpid(), "url": url, "host": host, "port": bound, "started": time.time()}
        )
    )
    os.replace(temporary, state)
    config = uvicorn.Config(
        Host(workspace).app(),
        log_level="warning",
        access_log=False,
        http=HttpProtocol,
        lifespan="on",
    )
    # uvicorn re-raises the SIGTERM it shut down on once it is done; with the default action
    # that would end the process before `finally` removes the state file, and `serve --stop`
    # (or a deploy) would then wait on a stale file whose pid may still look alive.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        with contextlib.suppress(OSError):
            if read_state(workspace).get("pid") == os.getpid():
                state.unlink()
        lock.close()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
