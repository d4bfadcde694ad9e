"""uvicorn's HTTP protocol with TCP_NODELAY set on every connection, and read timeouts.

asyncio sets TCP_NODELAY itself only on sockets whose `proto` is IPPROTO_TCP. uvicorn's worker
processes (`--workers N > 1`) accept on a listening socket made as `socket(AF_INET,
SOCK_STREAM)`, whose `proto` is 0, so their connections keep Nagle's algorithm; with the
response head and body written separately, each answer then waits for the client's delayed ACK
(about 40 ms on Linux: 22 requests/s on one connection, measured by bench/serve_bench.py).

uvicorn times out only an idle keep-alive connection, and any byte restarts that: a client that
sends its head (or its body) a byte at a time holds a connection, and a task, for ever
(slowloris). Here a request's head must arrive within the header timeout of the connection's
opening or of the request's first byte, and its body within the body timeout of the head's
end; a connection that does not keep up is answered 408 (when no answer has started) and
closed. The timeouts are `modelci.runtime.limits.read_timeouts()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from modelci.runtime.limits import read_timeouts

try:  # uvicorn's faster parser when the environment has it, as uvicorn's "auto" would pick
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - depends on the environment
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment, unused-ignore]

_TIMED_OUT_BODY = b'{"error":"the request was not sent within the time limit"}'
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMED_OUT_BODY), _TIMED_OUT_BODY)
)


class HttpProtocol(_Base):
    """uvicorn's HTTP protocol, with Nagle's algorithm off and read timeouts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout, self._body_timeout = read_timeouts()
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading: object = None  # the request (cycle) whose body is being read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override, unused-ignore]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)  # type: ignore[arg-type, unused-ignore]
        self._arm(self._header_timeout, head=True)  # a connection that never sends a head

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm the timer for what the connection is reading now: a head, a body, or nothing
        (the request is whole and the app answers it)."""
        cycle: Any = self.cycle
        if cycle is not None and cycle is not self._reading and not cycle.response_complete:
            # a new request's head is complete: its body is read next, if it has one
            self._reading = cycle
            if cycle.more_body:
                self._arm(self._body_timeout, head=False)
            else:
                self._disarm()
        elif cycle is None or cycle.response_complete:
            if self._read_timer is None:  # bytes of a next request's head
                self._arm(self._header_timeout, head=True)
        elif not cycle.more_body:
            self._disarm()

    def _arm(self, delay: float, *, head: bool) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(delay, self._timed_out, head)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self, head: bool) -> None:
        self._read_timer = None
        transport: Any = self.transport
        if transport is None or transport.is_closing():
            return
        cycle: Any = self.cycle
        if head or cycle is None or not cycle.response_started:
            with contextlib.suppress(Exception):
                transport.write(_TIMED_OUT)
        transport.close()
