"""A small keep-alive HTTP/1.1 client for the endpoint host: it forwards requests to version
servers on loopback with little per-request work (no client object per request, no header
objects), which is what keeps the host's throughput near the servers' own."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

MAX_IDLE = 64
HEAD_LIMIT = 64 * 1024


class UpstreamError(Exception):
    """The version server could not be reached or answered garbage."""


class UpstreamUnreachable(UpstreamError):
    """No connection could be made: the request was never delivered."""


@dataclass(frozen=True)
class Answer:
    """A version server's answer."""

    status: int
    body: bytes
    content_type: str | None
    headers: tuple[tuple[str, str], ...]


class Upstream:
    """Keep-alive connections to one server at 127.0.0.1:port."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.closed = False

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise UpstreamUnreachable(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return reader, writer

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Answer:
        """Send one request; a reused connection the server closed is retried on a new one."""
        head = [
            f"{method} {path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            f"content-length: {len(body)}",
        ]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (0, 1):
            reused = bool(self.idle)
            reader, writer = self.idle.pop() if reused else await self._connect()
            try:
                writer.write(data)
                answer, keep = await asyncio.wait_for(self._read(reader), timeout)
            except (OSError, asyncio.IncompleteReadError, UpstreamError, ValueError) as exc:
                writer.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle connection: not the request's fault
                raise UpstreamError(
                    f"{self.host}:{self.port}: {exc or type(exc).__name__}"
                ) from None
            except BaseException:
                writer.close()
                raise
            if keep and not self.closed and len(self.idle) < MAX_IDLE:
                self.idle.append((reader, writer))
            else:
                writer.close()
            return answer
        raise UpstreamError("unreachable")  # pragma: no cover

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
        raw = await reader.readuntil(b"\r\n\r\n")
        if len(raw) > HEAD_LIMIT:
            raise UpstreamError("answer head too large")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: list[tuple[str, str]] = []
        length = None
        chunked = False
        keep = True
        content_type = None
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                keep = False
            elif name == "content-type":
                content_type = value
            headers.append((name, value))
        if chunked:
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            payload = bytes(body)
        elif length is not None:
            payload = await reader.readexactly(length)
        else:
            payload = await reader.read()
            keep = False
        return Answer(status, payload, content_type, tuple(headers)), keep

    def close(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        self.closed = True
        while self.idle:
            _, writer = self.idle.pop()
            with contextlib.suppress(OSError, RuntimeError):  # already closed, or its loop is
                writer.close()
