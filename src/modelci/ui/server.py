"""Running the dashboard: uvicorn on the given address, saying where once it listens."""

from __future__ import annotations

import socket
from collections.abc import Callable

from modelci.ui.actions import Actions
from modelci.ui.source import Source


def run_dashboard(
    source: Source,
    actions: Actions | None,
    host: str,
    port: int,
    listening: Callable[[str], None],
) -> None:
    """Serve until interrupted. The socket is bound (and listens) first, so that port 0 names
    the port picked: `listening(url)` is told the URL before uvicorn starts."""
    import uvicorn

    from modelci.ui.app import create_app

    app = create_app(source, actions)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host.strip("[]"), port))
    listener.listen(128)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    listening(f"http://{shown}:{bound}/")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[listener])
