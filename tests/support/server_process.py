"""The runtime's server (`python -m modelci.runtime.server`) as a real process on a free port of
127.0.0.1, started from this checkout's src/ and stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.waiting import wait_until

SRC = Path(__file__).resolve().parents[2] / "src"
READY_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0


class Server:
    """A running server process and its base URL."""

    def __init__(self, process: subprocess.Popen[str], url: str):
        self.process = process
        self.url = url


def answers_ping(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ping", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_server(*arguments: str) -> Iterator[Server]:
    port = free_port()
    command = [sys.executable, "-m", "modelci.runtime.server", "--port", str(port), *arguments]
    env = os.environ | {"PYTHONPATH": str(SRC)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: answers_ping(url),
            f"the server at {url} answers /ping",
            deadline_s=READY_DEADLINE_S,
            process=process,
        )
        yield Server(process, url)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server_output = process.communicate()
        assert "Traceback" not in server_output[1], server_output[1]
