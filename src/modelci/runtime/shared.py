"""The shared version server: one process serving several model versions that share an
environment, as SageMaker's multi-model endpoints do.

`python -m modelci.runtime.server --shared` runs it. The endpoint host registers each version
(`PUT /-/models/<endpoint>/<version>` with the version's model folder, handler, metadata and
batching), and the version answers at `/models/<endpoint>/<version>/invocations`, `/ping`,
`/metadata`, `/metrics` and `/openapi.json`, as its own server would at the root. A version is
loaded on first use (its `model_fn` run then; a failure fails that version only, with the
error in its answers), unloaded after `--idle-unload-s` seconds without a request, and the
least recently used loaded version gives way when `--max-loaded` are loaded. `GET /-/models`
says which versions are registered and loaded, and the process's resident memory.

Each version's handler is imported under a name of its own (handlers.import_handler), and the
modules its folder provides (an `inference.py` importing a sibling `features.py`) are dropped
from `sys.modules` once it is loaded, so that the next version's `features` is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelci.runtime.app import JSON, InferenceService, error_response
from modelci.runtime.errors import ServeError
from modelci.runtime.handlers import HANDLER_FILES, load_handler
from modelci.runtime.metrics import Metrics

log = logging.getLogger("modelci.serve")
ACTIONS = ("ping", "metadata", "metrics", "openapi.json")


class NotRegistered(ServeError):
    """No version of that name is registered here (the host registers it again)."""

    status = 404


def _answer(document: Any, status: int = 200) -> Response:
    return Response(json.dumps(document), status_code=status, media_type=JSON)


@dataclass
class Version:
    """A registered version: how to load it, and its service while loaded."""

    config: dict[str, Any]
    metrics: Metrics = field(default_factory=Metrics)  # kept across unloads
    service: InferenceService | None = None
    failure: str | None = None  # why the last load failed
    last_used: float = field(default_factory=time.monotonic)
    inflight: int = 0
    loads: int = 0
    loaded_s: float | None = None  # how long the last load took


@contextlib.contextmanager
def _own_modules(folders: list[Path]) -> Iterator[None]:
    """Imports made inside stay with the version being loaded: modules that come from its
    folders leave `sys.modules` afterwards, and the folders leave `sys.path`."""
    before_path = list(sys.path)
    roots = [str(folder.resolve()) for folder in folders]
    try:
        yield
    finally:
        sys.path[:] = before_path
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if any(origin.startswith(root + os.sep) for root in roots):
                del sys.modules[name]


def _release_memory() -> None:
    """Collect, and hand freed heap pages back to the system (glibc)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def resident_bytes() -> int | None:
    """This process's resident set size, from /proc (None elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class SharedService:
    """The registered versions, their loading, idle unloading and routes."""

    def __init__(self, idle_unload_s: float = 0.0, max_loaded: int = 0):
        self.idle_unload_s = idle_unload_s
        self.max_loaded = max_loaded
        self.versions: dict[str, Version] = {}
        self.loading = asyncio.Lock()  # one load at a time: imports touch sys.path/sys.modules

    # --- loading and unloading -----------------------------------------------------------

    def _load(self, version: Version) -> InferenceService:
        config = version.config
        model_dir = Path(config["model_dir"])
        handler = config.get("handler_path")
        folders = [model_dir, *([Path(handler).parent] if handler else [])]
        folders += [(model_dir / name).parent for name in HANDLER_FILES]
        with _own_modules(folders):
            loaded = load_handler(model_dir, handler)
        return InferenceService(
            loaded,
            metadata=config.get("metadata"),
            batch_max_size=int(config.get("batch_max_size", 64)),
            batch_max_wait_ms=float(config.get("batch_max_wait_ms", 2.0)),
            metrics=version.metrics,
        )

    async def loaded(self, key: str) -> Version:
        """The version, loaded (a ServeError with the load's failure when it cannot be)."""
        version = self.versions.get(key)
        if version is None:
            raise NotRegistered(f"version {key} is not registered in this server")
        version.last_used = time.monotonic()
        if version.service is not None:
            return version
        async with self.loading:
            if version.service is None and self.versions.get(key) is version:
                self._make_room()
                start = time.perf_counter()
                try:
                    version.service = await asyncio.to_thread(self._load, version)
                except Exception as error:  # model_fn raised: this version fails, not the rest
                    log.exception("loading %s failed", key)
                    message = error.message if isinstance(error, ServeError) else repr(error)
                    version.failure = f"loading {key} failed: {message}"
                    raise ServeError(version.failure) from None
                version.failure = None
                version.loads += 1
                version.loaded_s = time.perf_counter() - start
        if version.service is None:
            raise ServeError(version.failure or f"version {key} was unregistered")
        return version

    def _make_room(self) -> None:
        """Unload the least recently used idle versions beyond `max_loaded - 1`."""
        if self.max_loaded < 1:
            return
        loaded = [v for v in self.versions.values() if v.service is not None and not v.inflight]
        loaded.sort(key=lambda v: v.last_used)
        while loaded and len(self._loaded()) >= self.max_loaded:
            self._unload(loaded.pop(0))

    def _loaded(self) -> list[Version]:
        return [v for v in self.versions.values() if v.service is not None]

    def _unload(self, version: Version) -> None:
        version.service = None
        _release_memory()

    def unload_idle(self) -> int:
        """Unload the versions idle for `idle_unload_s` seconds; how many were."""
        if self.idle_unload_s <= 0:
            return 0
        limit = time.monotonic() - self.idle_unload_s
        idle = [
            v
            for v in self.versions.values()
            if v.service is not None and not v.inflight and v.last_used < limit
        ]
        for version in idle:
            version.service = None
        if idle:
            _release_memory()
        return len(idle)

    async def reaper(self) -> None:
        interval = min(1.0, max(0.05, self.idle_unload_s / 4))
        while True:
            await asyncio.sleep(interval)
            self.unload_idle()

    # --- routes ----------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        key = f"{request.path_params['endpoint']}/{request.path_params['version']}"
        try:
            config = json.loads(await request.body())
            if not isinstance(config, dict) or not isinstance(config.get("model_dir"), str):
                raise ValueError("expected a JSON object with model_dir")
        except ValueError as error:
            return _answer({"error": f"bad registration: {error}"}, 400)
        known = self.versions.get(key)
        if known is None or known.config != config:
            self.versions[key] = Version(config)
        return _answer({"registered": key})

    async def unregister(self, request: Request) -> Response:
        key = f"{request.path_params['endpoint']}/{request.path_params['version']}"
        version = self.versions.pop(key, None)
        if version is not None and version.service is not None:
            self._unload(version)
        return _answer({"unregistered": key, "known": version is not None})

    async def models(self, request: Request) -> Response:
        return _answer(self.describe())

    def describe(self) -> dict[str, Any]:
        """Which versions are registered and loaded, and this process's memory."""
        return {
            "pid": os.getpid(),
            "rss_bytes": resident_bytes(),
            "idle_unload_s": self.idle_unload_s,
            "max_loaded": self.max_loaded,
            "versions": {
                key: {
                    "loaded": version.service is not None,
                    "loads": version.loads,
                    "load_s": version.loaded_s,
                    "idle_s": round(time.monotonic() - version.last_used, 3),
                    "failure": version.failure,
                }
                for key, version in self.versions.items()
            },
        }

    async def invocations(self, request: Request) -> Response:
        key = f"{request.path_params['endpoint']}/{request.path_params['version']}"
        try:
            version = await self.loaded(key)
        except ServeError as error:
            return error_response(error)
        assert version.service is not None
        version.inflight += 1
        try:
            return await version.service.invocations(request)
        finally:
            version.inflight -= 1
            version.last_used = time.monotonic()

    async def action(self, request: Request) -> Response:
        """A version's GET routes. `/ping` and `/metrics` neither load a version nor count as
        its use (a health check or a scrape must not keep idle versions in memory); `/ping`
        answers for an unloaded version whose last load did not fail, and `/ping?load=1` (the
        host, before routing to a new version) loads it first."""
        key = f"{request.path_params['endpoint']}/{request.path_params['version']}"
        action = request.path_params["action"]
        if action not in ACTIONS:
            return _answer({"error": f"no route {action!r}; routes: {', '.join(ACTIONS)}"}, 404)
        known = self.versions.get(key)
        if known is not None and action == "metrics":
            body, content_type = known.metrics.render()
            return Response(body, media_type=content_type)
        if known is not None and action == "ping" and not request.query_params.get("load"):
            if known.failure is not None:
                return error_response(ServeError(known.failure))
            loaded = known.service is not None
            return _answer({"status": "healthy", "loaded": loaded})
        try:
            service = (await self.loaded(key)).service
        except ServeError as error:
            return error_response(error)
        assert service is not None
        route = {
            "ping": service.ping,
            "metadata": service.get_metadata,
            "openapi.json": service.openapi,
        }[action]
        return await route(request)

    async def ping(self, request: Request) -> Response:
        return Response(b'{"status":"healthy"}', media_type=JSON)

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            task = asyncio.create_task(self.reaper())
            try:
                yield
            finally:
                task.cancel()

        version = "/{endpoint}/{version}"
        return Starlette(
            routes=[
                Route(f"/models{version}/invocations", self.invocations, methods=["POST"]),
                Route(f"/models{version}/{{action}}", self.action, methods=["GET"]),
                Route("/ping", self.ping, methods=["GET"]),
                Route("/-/models", self.models, methods=["GET"]),
                Route(f"/-/models{version}", self.register, methods=["PUT"]),
                Route(f"/-/models{version}", self.unregister, methods=["DELETE"]),
            ],
            lifespan=lifespan,
        )


def create_shared_app(idle_unload_s: float = 0.0, max_loaded: int = 0) -> Starlette:
    """The shared server's ASGI app; its SharedService is at `app.state.service`."""
    service = SharedService(idle_unload_s, max_loaded)
    app = service.app()
    app.state.service = service
    return app
