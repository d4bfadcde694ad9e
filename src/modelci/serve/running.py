"""Running the endpoint host in this process: the child that `modelci serve`'s supervisor
starts on its socket (modelci.serve.supervisor). Writes the state file local clients find the
host by, and removes it when the host stops."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

from modelci.serve.host import DRAIN_TIMEOUT_S, Host
from modelci.serve.hoststate import remove_state, write_state
from modelci.serve.reports import Reporter, host_name, host_url
from modelci.workspace import Workspace


def run_host(
    workspace: Workspace,
    listener: socket.socket,
    host: str,
    token: str | None = None,
    token_file: Path | None = None,
    name: str | None = None,
) -> None:
    """Serve on `listener` until stopped. The supervisor (modelci.serve.supervisor, this
    process's parent) holds the repository's host lock and the socket, and starts this host
    again if it dies. With a `token` (read from `token_file`, whose path local clients find in
    the state file), every route but /ping needs it. A host with no checkout, or one of a
    project whose deploy backend is `host`, reports what it serves through the registry, as
    `name`."""
    import uvicorn

    from modelci.runtime.protocol import HttpProtocol

    # uvicorn re-raises the SIGTERM it shut down on once it is done; with the default action
    # that would end the process before `finally` removes the state file, and `serve --stop`
    # (or a deploy) would then wait on a stale file whose pid may still look alive.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    bound = listener.getsockname()[1]
    reporter = None  # settled before the state file says the host runs
    if workspace.detached or workspace.project.deploy.backend == "host":
        reporter = Reporter(workspace, name or host_name(bound), host_url(host, bound))
    write_state(
        workspace,
        {
            "pid": os.getpid(),
            "supervisor": os.getppid(),
            "url": f"http://{host}:{bound}",
            "host": host,
            "port": bound,
            "started": time.time(),
            "token": token is not None,
            "token_file": str(token_file.resolve()) if token_file else None,
        },
    )
    config = uvicorn.Config(
        Host(workspace, token, reporter).app(),
        log_level="warning",
        access_log=False,
        http=HttpProtocol,
        lifespan="on",
        # a request still waiting on a version's start must not hold the host's stop for long
        timeout_graceful_shutdown=int(DRAIN_TIMEOUT_S),
    )
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        remove_state(workspace)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
