"""HTTP/1.1 spoken byte by byte over a real socket, for requests no HTTP client would send: raw
control characters in a request line, a declared body that never comes, and slow clients
(slowloris) that trickle a head or a body and never finish."""

from __future__ import annotations

import select
import socket
import threading
from urllib.parse import urlsplit

TIMEOUT_S = 30.0


def connect(url: str) -> socket.socket:
    """A connection to the server at `url` (http://127.0.0.1:port)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S)


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of one answer (framed by Content-Length, else by the close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), f"not an HTTP answer: {data[:200]!r}"
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while length is None or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ", 2)[1]), body


def exchange(url: str, request: bytes) -> tuple[int, bytes]:
    """Send `request` as it is; the status and body of the answer."""
    with connect(url) as sock:
        sock.sendall(request)
        return read_answer(sock)


def send_until_answered(sock: socket.socket, chunks: int, chunk: bytes) -> None:
    """Send up to `chunks` copies of `chunk`, stopping once the server has answered (or
    closed): what a client streaming a body does when the server refuses it midway."""
    for _ in range(chunks):
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return
        try:
            sock.sendall(chunk)
        except OSError:  # the server closed its end after answering
            return


class SlowClient:
    """A client that sends `start` and then one byte of `trickle` after another, `pause_s`
    apart, for ever (slowloris); it keeps what the server sends back and notes when the
    server closes the connection."""

    def __init__(self, url: str, start: bytes, trickle: bytes, pause_s: float = 0.2):
        self.sock = connect(url)
        self.sock.settimeout(None)  # only the server's closing ends the reading
        self.received = bytearray()
        self.closed = threading.Event()
        self.stopped = threading.Event()
        self.start, self.trickle, self.pause_s = start, trickle, pause_s
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        try:
            if self.start:
                self.sock.sendall(self.start)
            position = 0
            while self.trickle and not self.stopped.is_set() and not self.closed.is_set():
                self.sock.sendall(self.trickle[position : position + 1])
                position = (position + 1) % len(self.trickle)
                self.stopped.wait(self.pause_s)  # the client's pace, not a wait for a result
        except OSError:
            return

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
        except OSError:
            pass
        self.closed.set()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        for thread in self.threads:
            thread.join(timeout=TIMEOUT_S)
