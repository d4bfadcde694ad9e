"""Versions started ahead of their deploy (`POST /-/prepare`): when `run` starts training a
version, it asks the host for a spare server of that version: a process in the version's
environment, with its handler's libraries loaded, waiting for its model. When the registry's
pointer names the version and the host swaps to it, the spare is given the stored model and is
ready in the time the model takes to load, instead of a whole cold start.

A spare is never routed to before that swap (health check and drain as for any swap). At most
one is held per endpoint of a model of the project; one that no swap took within
PREPARED_TTL_S, or whose version the endpoint already serves, is stopped, as are all on the
host's exit. No spare is started for versions that share their environment's (already warm)
process, run several workers or run in a container."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelci import git
from modelci.errors import ModelciError
from modelci.serve.workers import LaunchSpec, VersionServer, spare_spec
from modelci.train.outcome import version_name

if TYPE_CHECKING:
    from modelci.workspace import Workspace

PREPARED_TTL_S = 600.0
FIELDS = ("endpoint", "model", "environment", "version", "commit")


@dataclass
class Held:
    server: VersionServer
    since: float


class Prepared:
    """The host's spare servers, by endpoint."""

    def __init__(self, workspace: Workspace, routes: dict[str, VersionServer]):
        self.workspace = workspace
        self.routes = routes  # the host's: what each endpoint serves now
        self.held: dict[str, Held] = {}

    def _serving(self, endpoint: str, version: str) -> bool:
        server = self.routes.get(endpoint)
        return server is not None and server.spec.version == version

    async def _stop(self, endpoint: str) -> None:
        held = self.held.pop(endpoint, None)
        if held is not None:
            await asyncio.to_thread(held.server.stop)

    async def take(self, spec: LaunchSpec) -> VersionServer | None:
        """The spare of exactly `spec` (same version and settings), given its model; None
        when there is none. A spare of the same version that no longer fits (settings changed,
        or it died) is stopped; one of another version stays (a restart of the serving version
        must not end the candidate's spare)."""
        held = self.held.get(spec.endpoint)
        if held is None or held.server.spec.version != spec.version:
            return None
        bare = replace(spec, model_dir="", artifact_sha256="")
        if held.server.spec != bare or not held.server.alive():
            await self._stop(spec.endpoint)
            return None
        del self.held[spec.endpoint]
        try:
            held.server.assign(spec)
        except OSError:  # it died meanwhile: the swap starts the version itself
            await asyncio.to_thread(held.server.stop)
            return None
        return held.server

    async def expire(self) -> None:
        """Stop the spares no swap took in time (their version failed its tests, or nobody
        deployed it), and those of a version the endpoint serves already."""
        now = time.monotonic()
        for endpoint, held in list(self.held.items()):
            version = held.server.spec.version
            if now - held.since > PREPARED_TTL_S or self._serving(endpoint, version):
                await self._stop(endpoint)

    def describe(self) -> dict[str, dict[str, Any]]:
        """endpoint -> its spare's version, process and whether it still runs."""
        return {
            endpoint: {
                "version": held.server.spec.version,
                "pid": held.server.process.pid,
                "alive": held.server.alive(),
            }
            for endpoint, held in self.held.items()
        }

    def servers(self) -> list[VersionServer]:
        """Every spare: the host stops them on its exit."""
        return [held.server for held in self.held.values()]

    async def request(self, request: Request) -> Response:
        """`POST /-/prepare` with `{"endpoint", "model", "environment", "version", "commit"}`:
        start a spare of that version (202), or, with `version` null, stop the endpoint's
        spare (200). A bad request is a 400 naming the field; the host never dies of one."""
        try:
            body: Any = await request.json()
        except ValueError:
            return _answer(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _answer(400, "the body must be a JSON object")
        version = body.get("version")
        for name in FIELDS:
            value = body.get(name)
            if not (isinstance(value, str) or (version is None and name in ("version", "commit"))):
                return _answer(400, f"field {name!r} must be a string")
        endpoint, model, environment = body["endpoint"], body["model"], body["environment"]
        try:
            workspace = type(self.workspace)(self.workspace.root)  # settings as now on disk
            project = workspace.project
            environments = project.environments
            if (
                environment not in environments
                or endpoint != model + environments[environment].suffix
            ):
                return _answer(400, f"{endpoint!r} is not {model!r}'s endpoint in {environment!r}")
            if project.deploy.backend != "local":  # containers: the engine starts them
                return _answer(200, f"{endpoint}: no spare on the {project.deploy.backend} backend")
            await self._stop(endpoint)
            if version is None:
                return _answer(200, f"{endpoint}: no spare")
            if self._serving(endpoint, version):
                return _answer(200, f"{endpoint}: serves {version} already")
            commit = body["commit"]
            if await asyncio.to_thread(git.resolve, workspace.root, commit) != commit:
                return _answer(400, f"field 'commit': {commit!r} is no commit of this repository")
            if version != version_name(model, commit):  # it names files: nothing else passes
                return _answer(
                    400, f"field 'version': {model}'s version of {commit} is not {version!r}"
                )
            spec = await asyncio.to_thread(
                spare_spec, workspace, endpoint, model, environment, version, commit
            )
            if spec.image or spec.workers != 1 or spec.isolation == "shared":
                return _answer(200, f"{endpoint}: {version} needs no spare")
            # launched from the event loop's thread: the server is to die with the host
            server = VersionServer.launch(spec, spare=True)
        except ModelciError as error:
            return _answer(409, error.render())
        except OSError as error:  # the environment's python, or the log folder
            return _answer(409, f"{endpoint}: no spare of {version}: {error}")
        self.held[endpoint] = Held(server, time.monotonic())
        return _answer(202, f"{endpoint}: a spare of {version} is starting")


def _answer(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status)
