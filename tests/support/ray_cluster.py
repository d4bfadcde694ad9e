"""A real two-node Ray cluster on this machine, for tests and benchmarks.

Both nodes run `ray start --block` in their own process group, bound to 127.0.0.1 on free
ports, with their own temporary folder; `stop()` ends exactly those process groups (never
`ray stop`, which would stop every Ray process of the user).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.waiting import wait_until

START_DEADLINE_S = 120.0
STOP_GRACE_S = 15.0
OBJECT_STORE_BYTES = 200 * 2**20  # the tests move small objects; spare the shared memory
RAY = str(Path(sys.executable).with_name("ray"))
# Ray has no switch for a multi-node cluster on the loopback interface: it turns 127.0.0.1
# into the machine's public address unless told it runs a single-machine cluster
# (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), and then `ray start --address` refuses to add a node.
# The worker node is started through this wrapper, which keeps the check's answer (a
# multi-node cluster is fine) but has the node take 127.0.0.1; its processes inherit the
# variable, so that everything of both nodes binds 127.0.0.1 only.
_LOOPBACK_WORKER = """\
import sys
from ray._private import ray_constants, services
ray_constants.ENABLE_RAY_CLUSTER = True
services.get_node_ip_address = lambda address=None: "127.0.0.1"
services.resolve_ip_for_localhost = lambda host: "127.0.0.1" if host in (
    "localhost", "127.0.0.1") else host
from ray.scripts.scripts import main
sys.argv[0] = "ray"
sys.exit(main())
"""


class RayUnavailable(RuntimeError):
    """Ray cannot run here (not installed, or the nodes did not come up)."""


@dataclass
class RayCluster:
    """A head node and a worker node, each with one CPU."""

    temp_dir: Path
    gcs_port: int
    dashboard_port: int
    serve_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def environ(self) -> dict[str, str]:
        """The MODELCI_RAY_* variables that point modelci at this cluster."""
        return {
            "MODELCI_RAY_ADDRESS": self.address,
            "MODELCI_RAY_DASHBOARD_URL": self.dashboard_url,
            "MODELCI_RAY_SERVE_PORT": str(self.serve_port),
        }

    def _node_ports(self) -> list[str]:
        return [
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--min-worker-port=0",
            "--max-worker-port=0",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
        ]

    def _start(
        self, name: str, launcher: list[str], arguments: list[str], environ: dict[str, str]
    ) -> None:
        log = self.temp_dir.parent / f"{self.temp_dir.name}-{name}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.processes.append(
                subprocess.Popen(
                    [
                        *launcher,
                        "start",
                        "--block",
                        "--num-cpus=1",
                        "--node-ip-address=127.0.0.1",
                        f"--temp-dir={self.temp_dir}",
                        "--disable-usage-stats",
                        *arguments,
                        *self._node_ports(),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=environ,
                )
            )

    def start(self) -> None:
        """Start the head, wait for its dashboard, start the worker, wait for both nodes."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        environ |= {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        self._start(
            "head",
            [RAY],
            [
                "--head",
                f"--port={self.gcs_port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={free_port()}",
            ],
            environ,
        )
        self._until_nodes(1)
        self._start(
            "worker",
            [sys.executable, "-c", _LOOPBACK_WORKER],
            [f"--address={self.address}"],
            environ,
        )
        self._until_nodes(2)

    def alive_nodes(self) -> int:
        """How many nodes the dashboard reports alive (0 when it does not answer)."""
        try:
            answer = httpx.get(f"{self.dashboard_url}/nodes?view=summary", timeout=5)
            nodes = answer.json()["data"]["summary"]
        except (httpx.HTTPError, ValueError, KeyError):
            return 0
        return sum(1 for n in nodes if n.get("raylet", {}).get("state") == "ALIVE")

    def _until_nodes(self, count: int) -> None:
        def alive() -> bool:
            if self.alive_nodes() >= count:
                return True
            if any(process.poll() is not None for process in self.processes):
                raise RayUnavailable(f"a Ray node exited: {self.tail()}")
            return False

        try:
            wait_until(
                alive,
                f"{count} Ray node(s) alive",
                deadline_s=START_DEADLINE_S,
                pause_s=0.5,
                details=self.tail,
            )
        except AssertionError as error:
            raise RayUnavailable(str(error)) from None

    def tail(self) -> str:
        lines: list[str] = []
        for log in self.logs:
            with contextlib.suppress(OSError):
                lines += log.read_text(errors="replace").splitlines()[-10:]
        return "\n".join(lines)

    def stop(self) -> None:
        """End the nodes this object started (their process groups), worker first."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._kill_leftovers()
        self.processes.clear()

    def leftovers(self) -> list[int]:
        """Live processes whose command line names this cluster's temporary folder."""
        marker = str(self.temp_dir)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                continue
            if marker in command and state != "Z":
                found.append(int(entry.name))
        return found

    def _kill_leftovers(self) -> None:
        """Ray's own daemons (gcs_server, raylet, workers) may outlive `ray start`: kill what
        names this cluster's temporary folder, and wait until it is gone."""
        deadline = time.monotonic() + STOP_GRACE_S
        while (pids := self.leftovers()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)  # the poll interval


@contextlib.contextmanager
def ray_cluster() -> Iterator[RayCluster]:
    """A started two-node cluster, stopped and its temporary folder removed on exit."""
    if not Path(RAY).exists():
        raise RayUnavailable(f"{RAY} does not exist: install ray[default,serve]")
    # short: Ray's unix sockets live under it, and their paths are limited to 107 bytes
    temp_dir = Path(tempfile.mkdtemp(prefix="mci-ray-", dir="/tmp"))
    cluster = RayCluster(temp_dir, free_port(), free_port(), free_port())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
        for log in cluster.logs:
            with contextlib.suppress(OSError):
                log.unlink()
