"""What a host following the registry tells it: for each pointer (at its generation), that the
host serves its version healthily and the smoke request passed, or why it could not. Reports
are `host_report` events in the registry's log, written when what the host says of a pointer
changes; the `host` deploy backend waits for them (`modelci.deploy.host`), and `status` shows
the newest of each host."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelci.registry.base import Event

if TYPE_CHECKING:
    from modelci.registry.base import Registry
    from modelci.serve.workers import VersionServer
    from modelci.workspace import Workspace

KIND = "host_report"
SERVING, FAILED = "serving", "failed"

log = logging.getLogger("modelci.serve")


@dataclass(frozen=True)
class Seen:
    """What the host has of one endpoint as a reconcile left it."""

    version: str | None  # the version it routes to, healthy; None when none
    failed_version: str | None  # the version whose last start (or smoke request) failed
    error: str | None


def host_name(port: int) -> str:
    """How a host names itself in its reports by default: `<machine>:<port>`."""
    return f"{socket.gethostname()}:{port}"


def host_url(host: str, port: int) -> str:
    """Where clients reach the host: its address, or the machine's name for a wildcard."""
    where = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://{where}:{port}"


def seen(
    routes: Mapping[str, VersionServer], failures: Mapping[str, Mapping[str, Any]]
) -> dict[str, Seen]:
    """A snapshot of the host's endpoints, taken on the event loop's thread."""
    found: dict[str, Seen] = {}
    for endpoint in {*routes, *failures} - {"*"}:
        server = routes.get(endpoint)
        failure = failures.get(endpoint) or {}
        found[endpoint] = Seen(
            server.spec.version if server and server.healthy and server.alive() else None,
            failure.get("version"),
            failure.get("error"),
        )
    return found


async def smoke_check(server: VersionServer, smoke: tuple[bytes, str] | None) -> str | None:
    """Send the version's smoke request to its new server before any client's; None when it
    passed (or the version has none), else why not."""
    from modelci.serve.proxy import UpstreamError

    if smoke is None:
        return None
    try:
        answer = await server.upstream.request(
            "POST", "/invocations", smoke[0], {"content-type": smoke[1]}, timeout=60
        )
    except UpstreamError as error:
        return f"the smoke request failed: {error}"
    if not 200 <= answer.status < 300:
        body = answer.body[:300].decode(errors="replace")
        return f"the smoke request got {answer.status}: {body}"
    return None


class Reporter:
    """Writes this host's reports; remembers what it said of each endpoint."""

    def __init__(self, workspace: Workspace, name: str, url: str):
        self.workspace = workspace
        self.name = name
        self.url = url
        # endpoint -> (generation, status, version, the pointer's time): what it said last
        self.said: dict[str, tuple[int, str, str, datetime]] = {}

    async def report_soon(
        self, routes: Mapping[str, VersionServer], failures: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Report what a reconcile left (read here, on the event loop's thread; written on a
        worker thread). A registry that cannot be written to is tried again next time."""
        import asyncio

        endpoints = seen(routes, failures)
        try:
            await asyncio.to_thread(self.report, endpoints)
        except Exception as error:
            log.warning("could not report to the registry (trying again): %r", error)

    def report(self, endpoints: Mapping[str, Seen]) -> None:
        """Report, for each pointer whose version this host now serves or failed to serve,
        what it did, unless it said so already for that generation."""
        workspace = type(self.workspace)(self.workspace.root)  # fresh settings
        suffixes = {n: e.suffix for n, e in workspace.project.environments.items()}
        with workspace.registry() as registry:
            for pointer in registry.pointers():
                if pointer.environment not in suffixes:
                    continue
                endpoint = pointer.model + suffixes[pointer.environment]
                state = endpoints.get(endpoint)
                if state is None:
                    continue
                if state.version == pointer.version:
                    status, reason = SERVING, None
                elif state.failed_version == pointer.version:
                    status, reason = FAILED, state.error
                else:
                    continue  # still starting it
                said = (pointer.generation, status, pointer.version)
                # a cleared pointer set again starts from generation 1: its time tells it apart
                if self.said.get(endpoint) == (*said, pointer.updated_at):
                    continue
                self._append(registry, pointer.model, pointer.environment, endpoint, said, reason)
                self.said[endpoint] = (*said, pointer.updated_at)

    def _append(
        self,
        registry: Registry,
        model: str,
        environment: str,
        endpoint: str,
        said: tuple[int, str, str],
        reason: str | None,
    ) -> None:
        generation, status, version = said
        registry.append_event(
            Event(
                kind=KIND,
                model=model,
                version=version,
                environment=environment,
                actor=self.name,
                details={
                    "host": self.name,
                    "url": self.url,
                    "endpoint": endpoint,
                    "generation": generation,
                    "status": status,
                    "reason": reason,
                },
            )
        )
        log.info("reported %s %s of %s (generation %s)", endpoint, status, version, generation)
