"""Versions that share a server process: the endpoint host's side of the shared version server
(`modelci.runtime.shared`).

Versions whose LaunchSpec says `isolation = "shared"` and whose environments are the same (one
Python, one runtime copy) are served by one process per environment, started when the first of
them is launched and stopped when the last leaves. Each such version is a `SharedVersion`: a
VersionServer whose requests go to its own routes in that process, so the host routes, drains,
health-checks, smoke-checks and restarts it exactly as a version with a process of its own. A
shared process that dies is restarted by the first of its versions the host's monitor restarts;
the others register again in the new process, and load on their next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from modelci.processes import DIE_WITH_PARENT, stop_group
from modelci.serve.proxy import Answer, Upstream, UpstreamError
from modelci.serve.workers import (
    STOP_GRACE_S,
    LaunchSpec,
    VersionServer,
    free_port,
    server_environment,
)

REFRESH_TIMEOUT_S = 2.0
LEAVE_TIMEOUT_S = 5.0


def memory(pid: int) -> dict[str, int | None]:
    """A process's resident and proportional set sizes in bytes, from /proc (None when it
    cannot be read)."""
    figures: dict[str, int | None] = {"rss_bytes": None, "pss_bytes": None}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return figures
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("Rss", "Pss"):
            figures[f"{name.lower()}_bytes"] = int(value.split()[0]) * 1024
    return figures


def pool_key(spec: LaunchSpec) -> str:
    """The versions that may share a process: one environment, one set of unload settings."""
    identity = f"{spec.python}\0{spec.runtime}\0{spec.idle_unload_s}\0{spec.max_loaded}"
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


class RoutedUpstream(Upstream):
    """One version's routes in a shared process, through the process's keep-alive connections
    (one pool per process, not one per version: a process serving hundreds of versions must
    not hold hundreds of idle sockets)."""

    def __init__(self, shared: Upstream, prefix: str):
        super().__init__(shared.host, shared.port)
        self.shared = shared
        self.prefix = prefix

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Answer:
        return await self.shared.request(method, self.prefix + path, body, headers, timeout)

    def close(self) -> None:
        self.closed = True  # the connections are the process's, still used by its other versions


class SharedProcess:
    """One shared version server process and the versions registered in it."""

    def __init__(self, key: str, spec: LaunchSpec):
        self.key = key
        self.port = free_port()
        logs = Path(spec.log_dir)
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"shared-{key}.log"
        command = [
            *DIE_WITH_PARENT,  # a host killed outright takes it with it
            spec.python,
            "-m",
            "modelci.runtime.server",
            "--shared",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--idle-unload-s",
            str(spec.idle_unload_s),
            "--max-loaded",
            str(spec.max_loaded),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_environment(dict(os.environ), spec.runtime),
                start_new_session=True,
            )
        self.upstream = Upstream("127.0.0.1", self.port)
        self.members: Counter[str] = Counter()  # "endpoint/version" -> views holding it
        self.ready = False
        self.stopping = False
        self.models: dict[str, Any] = {}  # the process's last /-/models answer

    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_process(self, deadline: float) -> str | None:
        """None once the process answers /ping, else why not."""
        while not self.ready:
            if not self.alive():
                return f"the shared server exited with code {self.process.returncode}"
            if time.monotonic() > deadline:
                return "the shared server did not answer /ping in time"
            with contextlib.suppress(UpstreamError):
                if (await self.upstream.request("GET", "/ping", timeout=5)).status == 200:
                    self.ready = True
                    break
            await asyncio.sleep(0.05)
        return None

    def leave(self, key: str) -> None:
        """A view of `key` is gone: unregister the version when no view holds it, and stop the
        process when no version is left."""
        self.members[key] -= 1
        if self.members[key] > 0:
            return
        del self.members[key]
        if not self.members:
            self.stop()
        elif self.alive():  # a dead one's port may already be another process's
            connection = http.client.HTTPConnection("127.0.0.1", self.port, LEAVE_TIMEOUT_S)
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection.request("DELETE", f"/-/models/{key}")
                connection.getresponse().read()
            connection.close()

    def stop(self) -> None:
        self.stopping = True
        self.upstream.close()
        stop_group(self.process, STOP_GRACE_S)

    async def refresh(self) -> None:
        """Read which versions are loaded now (kept for `describe`)."""
        if not self.alive() or not self.ready:
            self.models = {}
            return
        try:
            answer = await self.upstream.request("GET", "/-/models", timeout=REFRESH_TIMEOUT_S)
            self.models = json.loads(answer.body) if answer.status == 200 else {}
        except (UpstreamError, TimeoutError, ValueError):
            self.models = {}

    def loaded(self, key: str) -> bool | None:
        """Whether the version is loaded, as last read (None: not known)."""
        version = (self.models.get("versions") or {}).get(key)
        return None if version is None else bool(version.get("loaded"))


class SharedVersion(VersionServer):
    """A version served by a shared process, as the host sees it."""

    def __init__(self, spec: LaunchSpec, pool: SharedProcess, restarts: int = 0):
        self.key = f"{spec.endpoint}/{spec.version}"
        upstream = RoutedUpstream(pool.upstream, f"/models/{self.key}")
        super().__init__(spec, pool.port, pool.process, pool.log_path, upstream, restarts=restarts)
        self.pool = pool
        pool.members[self.key] += 1

    @property
    def url(self) -> str:  # its own routes: /invocations, /ping... as a server of its own
        return f"http://127.0.0.1:{self.port}/models/{self.key}"

    def alive(self) -> bool:
        return self.pool.alive() and not self.pool.stopping

    def registration(self) -> bytes:
        spec = self.spec
        metadata = {
            "model": spec.model,
            "version": spec.version,
            "commit": spec.commit,
            "environment": spec.environment,
            "endpoint": spec.endpoint,
        }
        return json.dumps(
            {
                "model_dir": str(Path(spec.model_dir).resolve()),
                "handler_path": str(Path(spec.handler).resolve()) if spec.handler else None,
                "metadata": metadata,
                "batch_max_size": spec.batch_max_size,
                "batch_max_wait_ms": spec.batch_max_wait_ms,
            }
        ).encode()

    async def wait_ready(self, timeout: float) -> str | None:
        """Register the version in its process, and load it (a new deploy: a model_fn that
        raises fails here, as its own server would); a restart loads on the next request."""
        deadline = time.monotonic() + timeout
        problem = await self.pool.wait_process(deadline)
        if problem is not None:
            return f"{problem}: {self.log_tail()}"
        headers = {"content-type": "application/json"}
        try:
            answer = await self.pool.upstream.request(
                "PUT", f"/-/models/{self.key}", self.registration(), headers, timeout=10
            )
            if answer.status != 200:
                return (
                    f"the shared server refused {self.key}: {answer.body.decode(errors='replace')}"
                )
            if self.restarts == 0:
                remaining = max(1.0, deadline - time.monotonic())
                answer = await self.upstream.request("GET", "/ping?load=1", timeout=remaining)
                if answer.status != 200:
                    return _error(answer.body) or f"loading {self.key} answered {answer.status}"
        except UpstreamError as error:
            return f"the shared server failed: {error}: {self.log_tail()}"
        self.healthy = True
        return None

    def stop(self) -> None:
        """Leave the shared process (stopped with its last version)."""
        if self.stopping:
            return
        self.stopping = True
        self.healthy = False
        self.upstream.close()
        self.pool.leave(self.key)

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "isolation": "shared",
            "process": self.pool.key,
            "loaded": self.pool.loaded(self.key),
        }


def _error(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return str(document.get("error")) if isinstance(document, dict) else None


class SharedProcesses:
    """The host's shared processes, one per environment, and the launch deciding which
    versions go to one."""

    def __init__(self) -> None:
        self.pools: dict[str, SharedProcess] = {}

    def launch(self, spec: LaunchSpec, restarts: int = 0) -> VersionServer:
        """Start `spec`'s server, or join its environment's shared one (not ready yet either
        way: see `wait_ready`). Called from the event loop's thread, as VersionServer.launch."""
        if spec.isolation != "shared" or spec.image:
            return VersionServer.launch(spec, restarts)
        key = pool_key(spec)
        pool = self.pools.get(key)
        if pool is None or pool.stopping or not pool.alive():
            pool = self.pools[key] = SharedProcess(key, spec)
        return SharedVersion(spec, pool, restarts)

    async def refresh(self) -> None:
        for pool in list(self.pools.values()):
            await pool.refresh()

    def stop_all(self) -> None:
        for pool in self.pools.values():
            if not pool.stopping:
                pool.stop()
        self.pools.clear()

    def describe(self, routes: dict[str, VersionServer]) -> list[dict[str, Any]]:
        """Every server process of the host: which versions it serves and has loaded, and its
        memory."""
        processes: list[dict[str, Any]] = []
        for key, pool in self.pools.items():
            if pool.stopping:
                continue
            served = {
                e: s.spec.version
                for e, s in routes.items()
                if isinstance(s, SharedVersion) and s.pool is pool
            }
            loaded = [e for e, v in served.items() if pool.loaded(f"{e}/{v}")]
            processes.append(
                {
                    "pid": pool.process.pid,
                    "isolation": "shared",
                    "process": key,
                    "alive": pool.alive(),
                    "endpoints": served,
                    "loaded": sorted(loaded),
                    **memory(pool.process.pid),
                }
            )
        for endpoint, server in routes.items():
            if isinstance(server, SharedVersion):
                continue
            processes.append(
                {
                    "pid": server.process.pid,
                    "isolation": "process",
                    "alive": server.alive(),
                    "endpoints": {endpoint: server.spec.version},
                    "loaded": [endpoint] if server.healthy and server.alive() else [],
                    **memory(server.process.pid),
                }
            )
        return processes
