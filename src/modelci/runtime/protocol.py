"""uvicorn's HTTP protocol with TCP_NODELAY set on every connection.

asyncio sets TCP_NODELAY itself only on sockets whose `proto` is IPPROTO_TCP. uvicorn's worker
processes (`--workers N > 1`) accept on a listening socket made as `socket(AF_INET,
SOCK_STREAM)`, whose `proto` is 0, so their connections keep Nagle's algorithm; with the
response head and body written separately, each answer then waits for the client's delayed ACK
(about 40 ms on Linux: 22 requests/s on one connection, measured by bench/serve_bench.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

try:  # uvicorn's faster parser when the environment has it, as uvicorn's "auto" would pick
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - depends on the environment
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment, unused-ignore]


class HttpProtocol(_Base):
    """uvicorn's HTTP protocol, with Nagle's algorithm off for each connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override, unused-ignore]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)  # type: ignore[arg-type, unused-ignore]
