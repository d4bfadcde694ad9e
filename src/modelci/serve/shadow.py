"""Shadow traffic in the endpoint host: for an endpoint whose environment has a shadow in the
registry (`modelci deploy --shadow`), a second version server runs the candidate, started
without becoming the live one, and `percent` % of the endpoint's requests are sent to it as
well, once the live answer is back. Its answers are never returned: each is kept with the
live one as a pair (`modelci.shadow.pairs`), written off the request path (`shadowlog`).
Mirroring never slows or fails a live request: past MAX_PENDING mirrored requests in flight
the next ones are dropped and counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelci.errors import ModelciError
from modelci.serve.proxy import Answer, UpstreamError
from modelci.serve.shadowlog import PairLog
from modelci.serve.workers import VersionServer, launch_spec
from modelci.shadow.pairs import REPORT_KIND, Side, pair

if TYPE_CHECKING:
    from modelci.registry.base import Pointer, Shadow
    from modelci.serve.reports import Reporter
    from modelci.workspace import Workspace

MAX_PENDING = 64  # mirrored requests in flight on this host; more are dropped and counted
TIMEOUT_S = 30.0  # a mirrored request's answer is waited for this long
READY_TIMEOUT_S = 120.0
RETRY_S = 30.0  # a candidate that could not start is tried again after this long
SUFFIX = "--shadow"  # the candidate server's name: `<endpoint>--shadow`

log = logging.getLogger("modelci.serve")


@dataclass
class Mirror:
    """One endpoint's shadow on this host."""

    shadow: Shadow
    server: VersionServer
    credit: int = 0  # percent accumulated: a request is mirrored each time it reaches 100
    mirrored: int = 0
    dropped: int = 0


class Shadows:
    """The candidate servers of this host's endpoints, and the mirroring to them."""

    def __init__(self, workspace: Workspace, reporter: Reporter | None = None):
        self.workspace = workspace
        self.reporter = reporter
        self.mirrors: dict[str, Mirror] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.pending: set[asyncio.Task[None]] = set()
        self.log = PairLog(workspace, reporter.name if reporter else None)

    # --- following the registry ----------------------------------------------------------

    def desired(self, wanted: Mapping[str, Pointer]) -> dict[str, Shadow]:
        """endpoint -> its shadow, for the endpoints this host serves."""
        workspace = type(self.workspace)(self.workspace.root)
        with workspace.registry() as registry:
            shadows = {(s.model, s.environment): s for s in registry.shadows()}
        return {
            endpoint: shadow
            for endpoint, pointer in wanted.items()
            if (shadow := shadows.get((pointer.model, pointer.environment))) is not None
        }

    async def reconcile(self, wanted: Mapping[str, Pointer]) -> None:
        """Start, replace or stop candidate servers as the registry's shadows say."""
        try:
            shadows = await asyncio.to_thread(self.desired, wanted)
        except Exception as error:  # an older registry, or one unreadable now: keep as is
            log.warning("could not read the shadows (keeping them as they are): %r", error)
            return
        for endpoint, shadow in shadows.items():
            mirror = self.mirrors.get(endpoint)
            if (
                mirror is not None
                and mirror.server.spec.version == shadow.version
                and mirror.server.alive()
            ):
                if mirror.shadow.event != shadow.event:
                    await self.report(endpoint, shadow, None)
                mirror.shadow = shadow  # the percent or the session may have changed
                continue
            failed = self.failures.get(endpoint)
            recent = failed is not None and time.time() - failed["time"] < RETRY_S
            if recent and failed is not None and failed["event"] == shadow.event:
                continue  # not again in a tight loop
            await self.start(endpoint, shadow)
        for endpoint in [e for e in self.mirrors if e not in shadows]:
            await self.retire(self.mirrors.pop(endpoint))
        for endpoint in [e for e in self.failures if e not in shadows]:
            del self.failures[endpoint]

    async def start(self, endpoint: str, shadow: Shadow) -> None:
        try:
            spec = await asyncio.to_thread(
                launch_spec,
                self.workspace,
                endpoint + SUFFIX,
                shadow.model,
                shadow.environment,
                shadow.version,
            )
            server = VersionServer.launch(spec)  # on the loop's thread: see Host.swap
        except ModelciError as error:
            await self.failed(endpoint, shadow, error.render())
            return
        try:
            problem = await server.wait_ready(READY_TIMEOUT_S)
        except BaseException:
            server.stop()
            raise
        if problem is not None:
            await asyncio.to_thread(server.stop)
            await self.failed(endpoint, shadow, problem)
            return
        self.failures.pop(endpoint, None)
        old = self.mirrors.get(endpoint)
        self.mirrors[endpoint] = Mirror(shadow, server)
        if old is not None:
            await self.retire(old)
        log.info("%s mirrors %d%% to %s", endpoint, shadow.percent, shadow.version)
        await self.report(endpoint, shadow, None)

    async def failed(self, endpoint: str, shadow: Shadow, reason: str) -> None:
        self.failures[endpoint] = {
            "version": shadow.version,
            "event": shadow.event,
            "error": reason,
            "time": time.time(),
        }
        log.warning("%s: the shadow %s could not start: %s", endpoint, shadow.version, reason)
        await self.report(endpoint, shadow, reason)

    async def report(self, endpoint: str, shadow: Shadow, reason: str | None) -> None:
        """Tell the registry, for a host following a shared one, what became of the shadow."""
        if self.reporter is None:
            return
        from modelci.registry.base import Event

        event = Event(
            kind=REPORT_KIND,
            model=shadow.model,
            version=shadow.version,
            environment=shadow.environment,
            actor=self.reporter.name,
            details={
                "host": self.reporter.name,
                "url": self.reporter.url,
                "endpoint": endpoint,
                "shadow": shadow.event,
                "status": "failed" if reason else "serving",
                "reason": reason,
            },
        )
        workspace = type(self.workspace)(self.workspace.root)

        def write() -> None:
            with workspace.registry() as registry:
                registry.append_event(event)

        try:
            await asyncio.to_thread(write)
        except Exception as error:
            log.warning("could not report the shadow of %s: %r", endpoint, error)

    @staticmethod
    async def retire(mirror: Mirror) -> None:
        await mirror.server.drain(TIMEOUT_S)
        await asyncio.to_thread(mirror.server.stop)

    # --- mirroring -----------------------------------------------------------------------

    def mirror(
        self,
        endpoint: str,
        live: VersionServer,
        body: bytes,
        headers: dict[str, str],
        answer: Answer,
        latency_s: float,
    ) -> None:
        """Send this request to the endpoint's candidate too when its share says so, in the
        background; returns at once, and never raises into the live request."""
        try:
            self._mirror(endpoint, live, body, headers, answer, latency_s)
        except Exception:  # a shadow's trouble is never the client's
            log.exception("could not mirror a request of %s", endpoint)

    def _mirror(
        self,
        endpoint: str,
        live: VersionServer,
        body: bytes,
        headers: dict[str, str],
        answer: Answer,
        latency_s: float,
    ) -> None:
        mirror = self.mirrors.get(endpoint)
        if mirror is None:
            return
        mirror.credit += mirror.shadow.percent
        if mirror.credit < 100:
            return
        mirror.credit -= 100
        shadow = mirror.shadow
        if len(self.pending) >= MAX_PENDING or not mirror.server.alive():
            mirror.dropped += 1
            self.log.drop((shadow.model, shadow.environment, shadow.version, shadow.event))
            return
        seen = Side(
            live.spec.version, answer.status, latency_s * 1000, answer.body, answer.content_type
        )
        task = asyncio.get_running_loop().create_task(
            self.send(endpoint, mirror, body, headers, seen)
        )
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def send(
        self, endpoint: str, mirror: Mirror, body: bytes, headers: dict[str, str], live: Side
    ) -> None:
        shadow, server = mirror.shadow, mirror.server
        server.inflight += 1
        started = time.perf_counter()
        try:
            answer = await server.upstream.request(
                "POST", "/invocations", body, headers, timeout=TIMEOUT_S
            )
            candidate = Side(
                shadow.version,
                answer.status,
                (time.perf_counter() - started) * 1000,
                answer.body,
                answer.content_type,
            )
        except (UpstreamError, TimeoutError) as error:
            elapsed = (time.perf_counter() - started) * 1000
            candidate = Side(shadow.version, None, elapsed, b"", error=str(error) or "timed out")
        finally:
            server.inflight -= 1
        mirror.mirrored += 1
        record = pair(shadow.event, shadow.model, shadow.environment, endpoint, live, candidate)
        self.log.record((shadow.model, shadow.environment, shadow.version, shadow.event), record)

    # --- state ---------------------------------------------------------------------------

    def describe(self, endpoint: str) -> dict[str, Any] | None:
        """What /-/endpoints says of the endpoint's shadow, or None when it has none."""
        mirror = self.mirrors.get(endpoint)
        failure = self.failures.get(endpoint)
        if mirror is None and failure is None:
            return None
        described: dict[str, Any] = {}
        if mirror is not None:
            described = {
                **mirror.server.describe(),
                "percent": mirror.shadow.percent,
                "event": mirror.shadow.event,
                "mirrored": mirror.mirrored,
                "dropped": mirror.dropped,
            }
        if failure is not None:
            described["last_error"] = failure
        return described

    async def close(self) -> None:
        """Let mirrored requests in flight end (briefly), write what is left, stop servers."""
        if self.pending:
            await asyncio.wait(list(self.pending), timeout=5)
        await self.log.close()
        for mirror in list(self.mirrors.values()):
            await asyncio.to_thread(mirror.server.stop)
        self.mirrors.clear()
