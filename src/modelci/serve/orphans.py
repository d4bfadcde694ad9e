"""The endpoint host's part in finishing deploys whose own process is gone
(`modelci.deploy.intent`): after each reconciliation, a pointer still pending for a deploy
that no process will finish is settled when the host serves its version healthily and the
smoke request answers, or put back to the previous version, with the reason, when that version
could not start or does not answer. The host reconciles every few seconds, so an endpoint
does not wait for the next command to agree with the registry again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from modelci.deploy.intent import interrupted, orphaned, put_back, settle
from modelci.errors import ModelciError
from modelci.registry.base import Pointer
from modelci.serve.proxy import UpstreamError
from modelci.serve.workers import VersionServer
from modelci.workspace import Workspace

log = logging.getLogger("modelci.serve")


async def finish_orphaned(
    root: Path,
    wanted: dict[str, Pointer],
    routes: dict[str, VersionServer],
    failures: dict[str, dict[str, Any]],
) -> None:
    """Settle or put back every orphaned deploy among `wanted` (endpoint -> pointer) by what
    the host now serves (`routes`) and failed to start (`failures`)."""
    for endpoint, pointer in wanted.items():
        if pointer.pending is None or not orphaned(pointer):
            continue
        server = routes.get(endpoint)
        failure = failures.get(endpoint)
        if server is not None and server.spec.version == pointer.version and server.healthy:
            problem = await _smoke(root, pointer, server)
        elif failure is not None and failure.get("version") == pointer.version:
            problem = str(failure.get("error"))
        else:
            continue  # not decided yet (still starting)
        try:
            await asyncio.to_thread(_finish, root, pointer, problem)
        except Exception as error:  # whatever the registry did, the next reconciliation retries
            reason = error.render() if isinstance(error, ModelciError) else repr(error)
            log.warning("%s: could not finish the interrupted deploy: %s", endpoint, reason)


async def _smoke(root: Path, pointer: Pointer, server: VersionServer) -> str | None:
    """Why the version fails the deploy's smoke request, or None when it answers (or the
    model has no smoke request)."""
    from modelci.deploy.smoke import smoke_request

    try:
        workspace = Workspace(root)
        smoke = await asyncio.to_thread(smoke_request, workspace, workspace.model(pointer.model))
    except (ModelciError, OSError, ValueError):
        return None  # its folder is gone or broken: served healthily is all there is to check
    if smoke is None:
        return None
    try:
        answer = await server.upstream.request(
            "POST", "/invocations", smoke[0], {"content-type": smoke[1]}
        )
    except UpstreamError as error:
        return f"the smoke request failed: {error}"
    if 200 <= answer.status < 300:
        return None
    return f"the smoke request got {answer.status}: {answer.body[:300].decode(errors='replace')}"


def _finish(root: Path, pointer: Pointer, problem: str | None) -> None:
    workspace = Workspace(root)
    actor, ci_url = f"{workspace.actor()} (endpoint host)", workspace.ci_url()
    assert pointer.pending is not None
    with workspace.registry() as registry:
        if problem is None:
            if settle(registry, pointer, actor=actor, ci_url=ci_url, recovered=True):
                log.warning("%s; it serves healthily: complete", interrupted(pointer))
            return
        record = registry.get_version(pointer.version)
        reason = f"{interrupted(pointer)}, and it does not serve: {problem}"
        if put_back(
            registry,
            pointer,
            pointer.pending.previous,
            reason,
            commit=record.commit if record else None,
            actor=actor,
            ci_url=ci_url,
        ):
            log.warning("%s; put back %s", reason, pointer.pending.previous or "nothing")
