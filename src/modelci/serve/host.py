"""The local endpoint host (`modelci serve`): one process per repository that serves every
endpoint the registry points at, at `/endpoints/<endpoint>/invocations`, as AWS's SDK calls
SageMaker. It follows the registry: a new version is started in its own environment,
health-checked, given the new requests, and the old one drained and stopped, so that no
request fails during a swap. A version server that dies is restarted, and its endpoint
answers 503 meanwhile. Runs in modelci's own environment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelci.errors import ArtifactCorrupted, ArtifactNotFound, ModelciError, RegistryError
from modelci.registry.base import Pointer
from modelci.runtime.bodies import read_body
from modelci.runtime.errors import ServeError
from modelci.runtime.limits import MAX_BODY_BYTES
from modelci.serve.auth import authorized
from modelci.serve.capture import Capture
from modelci.serve.containers import sweep_for
from modelci.serve.intake import refused_path
from modelci.serve.orphans import finish_orphaned
from modelci.serve.prepared import Prepared
from modelci.serve.proxy import Answer, UpstreamError, UpstreamUnreachable
from modelci.serve.reports import Reporter, smoke_check
from modelci.serve.retiring import Retiring
from modelci.serve.shadow import Shadows
from modelci.serve.shared import SharedProcesses
from modelci.serve.traffic import Traffic
from modelci.serve.workers import LaunchSpec, VersionServer, launch_spec, verify_launch
from modelci.workspace import Workspace

POLL_S = 2.0  # how often the registry is read for changes made elsewhere
MONITOR_S = 0.25  # how often version servers are checked for a crash
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 30.0
RESTART_BACKOFF_S = 5.0  # between restarts of a server whose last restart failed
RESTART_WAIT_S = 30.0  # how long a request waits for its endpoint's crashed server to return
FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")

log = logging.getLogger("modelci.serve")
Handler = Callable[[Request], Awaitable[Response]]


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


class Host:
    """The endpoints, their version servers and the reconciliation with the registry."""

    def __init__(
        self, workspace: Workspace, token: str | None = None, reporter: Reporter | None = None
    ):
        self.workspace = workspace
        self.token = token  # when set, every route but /ping needs it
        # a host the `host` deploy backend waits on reports through the registry
        self.reporter = reporter
        self.routes: dict[str, VersionServer] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []
        self.starting: list[VersionServer] = []  # launched, not routed yet: stopped on exit
        self.processes = SharedProcesses()  # versions sharing their environment's process
        self.prepared = Prepared(workspace, self.routes)  # spares of versions being trained
        self.retiring = Retiring(DRAIN_TIMEOUT_S)  # what swaps replaced, still draining
        # Set while the registry cannot be read (or reads as lost): the host then keeps
        # serving what it last knew to be wanted, and says so in /-/health.
        self.registry_problem: dict[str, Any] | None = None
        self.registry_read_at: float | None = None
        self.traffic = Traffic(READY_TIMEOUT_S, DRAIN_TIMEOUT_S)  # gradual rollouts' candidates
        self.shadows = Shadows(workspace, reporter)  # candidates mirrored to, never answering
        self.capture = Capture(workspace.store)  # `[serve.capture]`: sampled, written in batches

    # --- the desired state ---------------------------------------------------------------

    def desired(self, serving: tuple[str, ...] = ()) -> dict[str, Pointer]:
        """endpoint -> its pointer in the registry (model, environment, version); raises
        when the registry reads as lost while the host serves the endpoints `serving`."""
        workspace = type(self.workspace)(self.workspace.root)  # fresh settings and specs
        environments = workspace.project.environments
        if not workspace.detached and workspace.project.deploy.backend not in (
            "local",
            "container",
            "host",
        ):  # this host's
            return {}
        # A registry that was made and is now missing or empty raises here (ConfigError);
        # one gone with its marker too, or emptied of every model, is as lost while this
        # host serves versions it named: undeploying clears pointers, it never removes models.
        if not workspace.registry_exists():
            if serving:
                raise RegistryError(f"the registry is gone, yet it wanted {', '.join(serving)}")
            return {}
        with workspace.registry() as registry:
            pointers = registry.pointers()
            if not pointers and serving and not registry.models():
                raise RegistryError(
                    f"the registry holds no model any more, yet it wanted {', '.join(serving)}"
                )
        return {
            pointer.model + environments[pointer.environment].suffix: pointer
            for pointer in pointers
            if pointer.environment in environments
        }

    # --- reconciliation ------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Bring the running servers in line with the registry."""
        async with self.lock:
            try:
                wanted = await asyncio.to_thread(self.desired, tuple(sorted(self.routes)))
            except Exception as error:  # whatever the registry did, the endpoints stay up
                reason = error.render() if isinstance(error, ModelciError) else repr(error)
                self.registry_failed(reason)
                return
            self.registry_read()
            rolling = await self.traffic.follow(self, wanted)
            for endpoint, pointer in wanted.items():
                if endpoint in rolling:
                    continue
                model, environment, version = pointer.model, pointer.environment, pointer.version
                current = self.routes.get(endpoint)
                if current is not None and current.spec.version == version:
                    continue
                failed = self.failures.get(endpoint)
                if (
                    failed
                    and failed.get("version") == version
                    and not failed.get("artifact")
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
            # a deploy killed before its health check: finished here, by what this host serves
            await finish_orphaned(self.workspace.root, wanted, self.routes, self.failures)
            await self.shadows.reconcile(wanted)
            if self.reporter is not None:
                await self.reporter.report_soon(self.routes, self.failures)
            await self.traffic.report(self.reporter)

    def registry_failed(self, reason: str) -> None:
        """Keep the last known good state; say so once in the log, always in /-/health."""
        now = time.time()
        self.failures["*"] = {"error": reason, "time": now}
        if self.registry_problem is None:
            log.warning(
                "the registry cannot be read; still serving %s as last read%s: %s",
                ", ".join(f"{e}={s.spec.version}" for e, s in self.routes.items()) or "nothing",
                "" if self.registry_read_at is None else f" at {time.ctime(self.registry_read_at)}",
                reason,
            )
            self.registry_problem = {"error": reason, "since": now}
        self.registry_problem["error"] = reason

    def registry_read(self) -> None:
        self.failures.pop("*", None)
        if self.registry_problem is not None:
            log.warning("the registry can be read again; following it")
            self.registry_problem = None
        self.registry_read_at = time.time()

    async def swap(
        self,
        endpoint: str,
        model: str,
        environment: str,
        version: str,
        restarts: int = 0,
        spec: LaunchSpec | None = None,
    ) -> bool:
        """Start `version` (from `spec` when given: a restart needs no registry), and once
        healthy route the endpoint to it and retire the old."""
        try:
            if spec is None:
                spec = await asyncio.to_thread(
                    launch_spec, self.workspace, endpoint, model, environment, version
                )
            else:  # a restart serves the same copy again: verified again first
                await asyncio.to_thread(verify_launch, self.workspace, spec)
            # launched from the event loop's thread, not a worker thread that may end first:
            # the server is to die with the host, and the kernel's "parent" is that thread
            server = await self.prepared.take(spec) or self.processes.launch(spec, restarts)
        except ModelciError as error:
            self.failures[endpoint] = {
                "version": version,
                "error": error.render(),
                "time": time.time(),
                # a refused artifact is checked again at every look, not after a back-off:
                # its bytes put back, it serves at once
                "artifact": isinstance(error, ArtifactCorrupted | ArtifactNotFound),
            }
            return False
        self.starting.append(server)
        try:
            problem = await server.wait_ready(READY_TIMEOUT_S)
            if problem is None and self.reporter is not None:
                problem = await smoke_check(server, spec.smoke)  # before any client's request
        except BaseException:  # cancelled: the host is stopping
            server.stop()
            raise
        finally:
            self.starting.remove(server)
        if problem is not None:
            await asyncio.to_thread(server.stop)
            self.failures[endpoint] = {"version": version, "error": problem, "time": time.time()}
            return False
        self.failures.pop(endpoint, None)
        old = self.routes.get(endpoint)
        self.routes[endpoint] = server  # from here on new requests go to the new version
        if old is not None:
            self.retiring.start(old)  # drained and stopped after the swap, not inside it
        return True

    async def monitor(self) -> None:
        """Restart a version server that died; its endpoint's requests wait meanwhile."""
        while True:
            await asyncio.sleep(MONITOR_S)
            for endpoint, server in list(self.routes.items()):
                if server.stopping or server.alive():
                    continue
                server.healthy = False
                failed = self.failures.get(endpoint) or {}
                if (
                    failed.get("version") == server.spec.version
                    and time.time() - failed["time"] < RESTART_BACKOFF_S
                ):
                    continue  # its last restart failed: no fork storm
                async with self.lock:
                    if self.routes.get(endpoint) is server:
                        spec = server.spec
                        await self.swap(
                            endpoint,
                            spec.model,
                            spec.environment,
                            spec.version,
                            restarts=server.restarts + 1,
                            spec=spec,
                        )

    async def poll(self) -> None:
        while True:
            try:
                await self.reconcile()
                await self.prepared.expire()
            except Exception:  # the host outlives any one failed look; the next poll retries
                log.exception("reconcile failed; retrying in %s s", POLL_S)
            await asyncio.sleep(POLL_S)

    # --- HTTP ----------------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        action = request.path_params.get("action", "invocations")
        refused = refused_path(request.scope["path"], endpoint, action)
        if refused is not None:  # nothing with a CR/LF (or worse) is forwarded
            return _json({"message": refused}, 400)
        try:  # the version servers' limit, held as the body streams in
            body = await read_body(request, MAX_BODY_BYTES) if request.method == "POST" else b""
        except ServeError as error:
            return _json({"message": error.message}, error.status)
        headers = {k: v for k in FORWARDED if (v := request.headers.get(k))}
        for attempt in (0, 1):
            server = self.routes.get(endpoint)  # looked up after the body: no await until sent
            if server is None:
                failure = self.failures.get(endpoint)
                message = f"endpoint {endpoint!r} is not deployed"
                if failure:
                    message += f" (its last start failed: {failure['error']})"
                known = ", ".join(sorted(self.routes)) or "none"
                return _json({"message": f"{message}; deployed endpoints: {known}"}, 404)
            if not server.healthy or not server.alive():
                restarted = await self.restarted(endpoint)
                if restarted is None:
                    return _json({"message": f"endpoint {endpoint!r} is restarting"}, 503)
                server = restarted
            server = self.traffic.pick(endpoint, server)  # a rollout's candidate takes its share
            server.inflight += 1
            answer: Answer | None = None
            started = time.perf_counter()
            try:
                answer = await server.upstream.request(request.method, f"/{action}", body, headers)
            except UpstreamUnreachable:
                if attempt == 0:
                    continue  # never delivered (the server just died): wait for its restart
                return _json({"message": f"endpoint {endpoint!r} is restarting"}, 503)
            except UpstreamError as error:
                if attempt == 0 and self.routes.get(endpoint) is not server:
                    continue  # swapped while in flight: send it to the new version
                return _json({"message": f"endpoint {endpoint!r} failed: {error}"}, 502)
            finally:
                server.inflight -= 1
                self.traffic.count(endpoint, server, answer, started)
            if action == "invocations":
                self.capture.offer(server.spec, body, headers.get("content-type"), answer)
                if self.shadows.mirrors:
                    self.shadows.mirror(
                        endpoint, server, body, headers, answer, time.perf_counter() - started
                    )
            return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
        return _json({"message": "unreachable"}, 500)  # pragma: no cover

    async def restarted(self, endpoint: str) -> VersionServer | None:
        """The endpoint's server once it is healthy again (the monitor restarts a crashed
        one), or None after RESTART_WAIT_S or when the endpoint is gone."""
        deadline = time.monotonic() + RESTART_WAIT_S
        while time.monotonic() < deadline:
            server = self.routes.get(endpoint)
            if server is None:
                return None
            if server.healthy and server.alive():
                return server
            await asyncio.sleep(0.02)
        return None

    def status(self, processes: bool = True) -> dict[str, Any]:
        """The endpoints, and (unless not `processes`) the server processes and their memory."""
        endpoints = {name: server.describe() for name, server in self.routes.items()}
        for name, failure in self.failures.items():
            endpoints.setdefault(name, {"healthy": False})["last_error"] = failure
        self.traffic.annotate(endpoints)
        for name in endpoints:
            if (shadow := self.shadows.describe(name)) is not None:
                endpoints[name]["shadow"] = shadow
        report = {
            "endpoints": endpoints,
            "pid": os.getpid(),
            "registry": self.registry_health(),
            "capture": self.capture.describe(),
            "spares": self.prepared.describe(),
        }
        if processes:
            report["processes"] = self.processes.describe(self.routes)
        return report

    def registry_health(self) -> dict[str, Any]:
        return {
            "ok": self.registry_problem is None,
            "last_read": self.registry_read_at,
            **(self.registry_problem or {}),
        }

    async def health(self, request: Request) -> Response:
        """The host's own health: `degraded` while the registry cannot be read (the endpoints
        keep their last known versions) or an endpoint is not healthy."""
        endpoints = {name: bool(s.healthy and s.alive()) for name, s in self.routes.items()}
        await self.processes.refresh()
        registry = self.registry_health()
        ok = registry["ok"] and all(endpoints.values())
        return _json(
            {
                "status": "ok" if ok else "degraded",
                "registry": registry,
                "endpoints": endpoints,
                "pid": os.getpid(),
                "processes": self.processes.describe(self.routes),
            }
        )

    async def endpoints(self, request: Request) -> Response:
        await self.processes.refresh()
        return _json(self.status())

    async def sync(self, request: Request) -> Response:
        await self.reconcile()
        return _json(self.status(processes=False))  # a deploy polls it: no /proc reads

    async def ping(self, request: Request) -> Response:
        return _json({"status": "ok", "endpoints": len(self.routes)})

    def guarded(self, handler: Handler) -> Handler:
        """`handler`, answering 401 to a request without the host's token (when it has one)."""

        async def check(request: Request) -> Response:
            if self.token is not None and not authorized(request.headers, self.token):
                return JSONResponse(
                    {
                        "message": "this host needs its token: Authorization: Bearer <token>, "
                        "or X-Modelci-Token: <token>"
                    },
                    status_code=401,
                    headers={"www-authenticate": "Bearer"},
                )
            return await handler(request)

        return check

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            swept = await asyncio.to_thread(sweep_for, self.workspace)
            if swept:
                log.warning("removed containers a killed host left running: %s", ", ".join(swept))
            self.tasks = [
                asyncio.create_task(self.poll()),
                asyncio.create_task(self.monitor()),
                asyncio.create_task(self.capture.run()),
            ]
            try:
                yield
            finally:
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
                await self.shadows.close()
                await self.capture.flush()  # what was sampled is written before the host ends
                await self.retiring.close()
                await asyncio.to_thread(self.processes.stop_all)  # not one version at a time
                running = [*self.starting, *self.routes.values(), *self.traffic.servers()]
                for server in running + self.prepared.servers():
                    await asyncio.to_thread(server.stop)
                self.routes.clear()

        return Starlette(
            routes=[
                Route("/ping", self.ping, methods=["GET"]),
                Route("/-/health", self.guarded(self.health), methods=["GET"]),
                Route("/-/endpoints", self.guarded(self.endpoints), methods=["GET"]),
                Route("/-/sync", self.guarded(self.sync), methods=["POST"]),
                Route("/-/prepare", self.guarded(self.prepared.request), methods=["POST"]),
                Route(
                    "/endpoints/{endpoint}/invocations", self.guarded(self.invoke), methods=["POST"]
                ),
                Route(
                    "/endpoints/{endpoint}/{action:str}", self.guarded(self.invoke), methods=["GET"]
                ),
            ],
            lifespan=lifespan,
        )
