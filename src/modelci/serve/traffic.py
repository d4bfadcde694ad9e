"""The endpoint host's half of a gradual rollout (`modelci.serve.split`): the candidate
version started beside the one that serves, the share of requests routed to it, its window
of counters, and the end of it all: the candidate promoted once the deploy settles, stopped
once the deploy puts the old version back (or the pointer moves elsewhere)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelci.deploy.intent import interrupted, orphaned, put_back
from modelci.errors import ModelciError
from modelci.serve.split import TRAFFIC, Window, current_step, gradual, takes_candidate

if TYPE_CHECKING:
    from modelci.registry.base import Pointer
    from modelci.serve.host import Host
    from modelci.serve.proxy import Answer
    from modelci.serve.reports import Reporter
    from modelci.serve.workers import VersionServer

log = logging.getLogger("modelci.serve")


@dataclass
class Split:
    """One endpoint's rollout on this host: the candidate beside the serving version."""

    pointer: Pointer
    server: VersionServer | None = None  # the candidate, once started, healthy and smoke-tested
    failed: str | None = None  # why the candidate could not start
    window: Window = field(default_factory=lambda: Window(0, 0))
    sent: int = 0  # requests of this step so far, candidate's or not
    reported: tuple[Any, ...] = ()  # what the last `rollout_traffic` report said

    def describe(self) -> dict[str, Any]:
        server = self.server
        return {
            "candidate": self.pointer.version,
            "previous": self.pointer.pending.previous if self.pointer.pending else None,
            "generation": self.pointer.generation,
            "ready": bool(server and server.healthy and server.alive()),
            "failed": self.failed,
            **self.window.to_json(),
        }


class Traffic:
    """Every endpoint's rollout on this host."""

    def __init__(self, ready_timeout: float, drain_timeout: float) -> None:
        self.splits: dict[str, Split] = {}
        self.ready_timeout = ready_timeout
        self.drain_timeout = drain_timeout

    # --- requests (the event loop's thread, no await) ------------------------------------------

    def pick(self, endpoint: str, serving: VersionServer) -> VersionServer:
        """The server that takes this request: the candidate for its share, else `serving`."""
        split = self.splits.get(endpoint)
        server = split.server if split else None
        if split is None or server is None or not (server.healthy and server.alive()):
            return serving
        split.sent += 1
        return server if takes_candidate(split.sent, split.window.percent) else serving

    def count(
        self, endpoint: str, server: VersionServer, answer: Answer | None, started: float
    ) -> None:
        """A request `server` answered (None: not delivered), counted when it is a candidate."""
        split = self.splits.get(endpoint)
        if split is not None and split.server is server:
            split.window.count(answer.status if answer else None, time.perf_counter() - started)

    # --- following the registry (under the host's lock) -------------------------------------

    async def follow(self, host: Host, wanted: dict[str, Pointer]) -> set[str]:
        """Start, step, promote or stop candidates as the pointers say; the endpoints whose
        rollout this handled (the host's own reconciliation leaves them alone)."""
        await self._join(host, wanted)
        rolling = {
            endpoint: pointer
            for endpoint, pointer in wanted.items()
            if gradual(pointer)
            and pointer.pending is not None
            and (serving := host.routes.get(endpoint)) is not None
            and serving.spec.version == pointer.pending.previous
        }
        # a rollout whose deploy is gone has no one watching its alarms: the old version back
        left = {e: p for e, p in rolling.items() if orphaned(p)}
        if left:
            await asyncio.to_thread(_put_back, host, list(left.values()))
            rolling = {e: p for e, p in rolling.items() if e not in left}
        for endpoint in [e for e in self.splits if e not in rolling]:
            await self._end(host, endpoint, wanted.get(endpoint))
        if not rolling:
            return set(left)
        steps = await asyncio.to_thread(self._steps, host, rolling)
        for endpoint, pointer in rolling.items():
            split = self.splits.get(endpoint)
            if split is None or split.pointer.generation != pointer.generation:
                if split is not None:
                    await self._end(host, endpoint, None)
                split = self.splits[endpoint] = Split(pointer)
                await self._start(host, endpoint, split)
            step, percent = steps[endpoint]
            if step != split.window.step:  # a new step: a new window
                split.window, split.sent = Window(step, percent), 0
        return {*rolling, *left}

    @staticmethod
    async def _join(host: Host, wanted: dict[str, Pointer]) -> None:
        """A host that joins a rollout in progress (started, or restarted, mid-rollout) starts
        the previous version first, then follows the rollout as the others do: the candidate
        takes the current step's share, not all. Should the previous version not start, the
        host serves the candidate (the pointer's version) rather than nothing."""
        for endpoint, pointer in wanted.items():
            previous = pointer.pending.previous if pointer.pending else None
            serving = host.routes.get(endpoint)
            served = serving.spec.version if serving is not None else None
            failed = host.failures.get(endpoint) or {}
            if (
                previous is None
                or not gradual(pointer)
                or served in (previous, pointer.version)
                or (failed.get("version") == previous and time.time() - failed["time"] < 30)
            ):
                continue
            log.warning(
                "%s: joining the rollout of %s: %s first", endpoint, pointer.version, previous
            )
            await host.swap(endpoint, pointer.model, pointer.environment, previous)

    @staticmethod
    def _steps(host: Host, rolling: dict[str, Pointer]) -> dict[str, tuple[int, int]]:
        with host.workspace.registry() as registry:
            return {endpoint: current_step(registry, p) for endpoint, p in rolling.items()}

    async def _start(self, host: Host, endpoint: str, split: Split) -> None:
        """Start the candidate, wait until it is healthy and its smoke request passes."""
        from modelci.serve.reports import smoke_check
        from modelci.serve.workers import launch_spec

        pointer = split.pointer
        try:
            spec = await asyncio.to_thread(
                launch_spec,
                host.workspace,
                endpoint,
                pointer.model,
                pointer.environment,
                pointer.version,
            )
            server = host.processes.launch(spec)  # alone, or in its environment's process
        except ModelciError as error:
            split.failed = error.render()
            return
        host.starting.append(server)
        try:
            problem = await server.wait_ready(self.ready_timeout)
            if problem is None:
                problem = await smoke_check(server, spec.smoke)
        except BaseException:
            server.stop()
            raise
        finally:
            host.starting.remove(server)
        if problem is not None:
            await asyncio.to_thread(server.stop)
            split.failed = problem
            return
        split.server = server
        log.info("%s: candidate %s ready beside the serving version", endpoint, pointer.version)

    async def _end(self, host: Host, endpoint: str, pointer: Pointer | None) -> None:
        """The rollout is over: promote a healthy candidate the pointer now names for good,
        else stop it (the old version, still routed, takes all traffic at once)."""
        split = self.splits.pop(endpoint)
        server = split.server
        if server is None:
            return
        settled = pointer is not None and pointer.pending is None
        if settled and pointer and pointer.version == server.spec.version and server.alive():
            old = host.routes.get(endpoint)
            host.routes[endpoint] = server
            if old is not None and old is not server:
                await old.drain(self.drain_timeout)
                await asyncio.to_thread(old.stop)
            log.info("%s: candidate %s takes all traffic", endpoint, server.spec.version)
            return
        await server.drain(self.drain_timeout)
        await asyncio.to_thread(server.stop)
        log.info("%s: candidate %s stopped", endpoint, server.spec.version)

    # --- what the host says ------------------------------------------------------------------

    def annotate(self, endpoints: dict[str, dict[str, Any]]) -> None:
        """Add each endpoint's rollout to the host's status."""
        for endpoint, split in self.splits.items():
            endpoints.setdefault(endpoint, {})["rollout"] = split.describe()

    def servers(self) -> list[VersionServer]:
        return [s.server for s in self.splits.values() if s.server is not None]

    async def report(self, reporter: Reporter | None) -> None:
        """Write each rollout's window as a `rollout_traffic` event when it changed (a host
        following a shared registry: the deploy reads them there)."""
        if reporter is None:
            return
        due = []
        for endpoint, split in self.splits.items():
            described = split.describe()
            said = tuple(described[k] for k in ("ready", "failed", "step", "requests", "errors"))
            if said != split.reported:
                due.append((endpoint, split, described, said))
        if not due:
            return
        try:
            await asyncio.to_thread(_write, reporter, [(e, s, d) for e, s, d, _ in due])
        except Exception as error:  # the next reconciliation writes it again
            log.warning("could not report the rollout's traffic: %r", error)
            return
        for _, split, _, said in due:
            split.reported = said


def _write(reporter: Reporter, due: list[tuple[str, Split, dict[str, Any]]]) -> None:
    from modelci.registry.base import Event

    with reporter.workspace.registry() as registry:
        for endpoint, split, described in due:
            registry.append_event(
                Event(
                    kind=TRAFFIC,
                    model=split.pointer.model,
                    version=split.pointer.version,
                    environment=split.pointer.environment,
                    actor=reporter.name,
                    details={
                        "host": reporter.name,
                        "url": reporter.url,
                        "endpoint": endpoint,
                        **described,
                    },
                )
            )


def _put_back(host: Host, pointers: list[Pointer]) -> None:
    """Put the previous version back for each rollout whose deploy process is gone."""
    actor = f"{host.workspace.actor()} (endpoint host)"
    with host.workspace.registry() as registry:
        for pointer in pointers:
            assert pointer.pending is not None
            reason = f"{interrupted(pointer)}: its rollout was left unfinished"
            if put_back(
                registry,
                pointer,
                pointer.pending.previous,
                reason,
                commit=None,
                actor=actor,
                ci_url=host.workspace.ci_url(),
            ):
                log.warning("%s; back to %s", reason, pointer.pending.previous)
