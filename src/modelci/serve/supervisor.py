"""`modelci serve` itself: a small supervisor that holds the repository's host lock and the
listening socket, and runs the endpoint host (modelci.serve.host) in a child process handed
that socket. A host that dies abnormally (killed by a signal, or an exit code other than 0, a
stop, and 2, a refusal) is started again on the same socket after a pause that doubles from
RESTART_PAUSE_S to MAX_PAUSE_S, at most RESTART_LIMIT times in RESTART_WINDOW_S, each restart
logged; past the limit the supervisor gives up and exits 1. Requests sent meanwhile wait in the
socket's backlog instead of being refused.

SIGTERM or SIGINT stops the host (which stops its version servers) and then the supervisor. The
host is started with DIE_WITH_PARENT: killing the supervisor outright takes the host with it,
and the host's version servers die with the host, so nothing is orphaned. Standard library
only: the supervisor stays small, and outlives whatever the host imports."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

from modelci.errors import ConfigError
from modelci.processes import DIE_WITH_PARENT
from modelci.serve.hoststate import remove_state, take_lock

if TYPE_CHECKING:
    from modelci.workspace import Workspace

RESTART_PAUSE_S = 0.2  # before the first restart; doubled after each one in a row
MAX_PAUSE_S = 8.0
RESTART_LIMIT = 5  # restarts within RESTART_WINDOW_S before the supervisor gives up
RESTART_WINDOW_S = 300.0
STEADY_S = 60.0  # a host that ran this long resets the pause to RESTART_PAUSE_S
STOP_TIMEOUT_S = 60.0  # for the host to stop after SIGTERM, before SIGKILL
EXIT_REFUSED = 2  # the host refused its configuration: starting it again would not help

log = logging.getLogger("modelci.serve.supervisor")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every incarnation of the host serves on."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", key="--port") from None
    return listener


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Runs `command` (the host, given the socket's descriptor) until stopped."""

    def __init__(self, workspace: Workspace, command: list[str], listener: socket.socket):
        self.workspace = workspace
        self.command = command
        self.listener = listener
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.restarts: list[float] = []  # when each restart happened (monotonic)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler of SIGTERM and SIGINT: stop the host, then end."""
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def start(self) -> subprocess.Popen[bytes]:
        # started from the main thread, which lives as long as the supervisor: the host dies
        # with it (see DIE_WITH_PARENT)
        return subprocess.Popen(
            [*DIE_WITH_PARENT, *self.command],
            pass_fds=(self.listener.fileno(),),
            stdin=subprocess.DEVNULL,
        )

    def run(self) -> int:
        """Run the host, restarting it as the module says; the supervisor's exit code."""
        pause = RESTART_PAUSE_S
        while True:
            started = time.monotonic()
            self.child = self.start()
            if self.stopping:  # a signal came while it was being started
                self.child.send_signal(signal.SIGTERM)
            code = self.child.wait()
            if self.stopping:
                return 0
            if code in (0, EXIT_REFUSED):
                return code  # stopped on purpose (SIGTERM to the host itself), or refused
            remove_state(self.workspace, self.child.pid)  # its pid may be reused
            now = time.monotonic()
            if now - started >= STEADY_S:
                pause = RESTART_PAUSE_S
            self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S]
            if len(self.restarts) >= RESTART_LIMIT:
                log.error(
                    "the endpoint host (pid %s) %s; it was restarted %s times in %g s: giving "
                    "up (`modelci serve` or the next deploy starts it again)",
                    self.child.pid,
                    describe_exit(code),
                    len(self.restarts),
                    RESTART_WINDOW_S,
                )
                return 1
            self.restarts.append(now)
            log.warning(
                "the endpoint host (pid %s) %s; starting it again in %g s (restart %s of at "
                "most %s in %g s)",
                self.child.pid,
                describe_exit(code),
                pause,
                len(self.restarts),
                RESTART_LIMIT,
                RESTART_WINDOW_S,
            )
            if not self.pause(pause):
                return 0
            pause = min(pause * 2, MAX_PAUSE_S)

    def pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stopped meanwhile; False when stopped."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
        return not self.stopping

    def end_child(self) -> None:
        """Stop the host if it still runs (the supervisor is ending)."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def supervise(workspace: Workspace, host: str, port: int, options: list[str]) -> int:
    """Take the host lock, bind `host`:`port` and run the host under supervision until
    stopped; the exit code. `options` are passed on to the host's `modelci serve`."""
    lock = take_lock(workspace)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        listener = bind(host, port)
        with listener:
            command = [sys.executable, "-m", "modelci", "-C", str(workspace.root), "serve"]
            command += ["--host", host, "--listen-fd", str(listener.fileno()), *options]
            supervisor = Supervisor(workspace, command, listener)
            previous = {
                sig: signal.signal(sig, supervisor.stop) for sig in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                return supervisor.run()
            finally:
                supervisor.end_child()
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    finally:
        lock.close()
