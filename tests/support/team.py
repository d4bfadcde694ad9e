"""A team's setup as the tests drive it: a shared registry and store, and long-lived
`modelci serve` hosts started in folders that are no checkout, following them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.waiting import wait_until

DEADLINE_S = 60.0


@dataclass
class TeamHost:
    """A `modelci serve --registry ... --store ...` process in its own folder."""

    name: str
    folder: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def metadata(self, endpoint: str) -> dict[str, object] | None:
        """The endpoint's /metadata on this host, or None while it does not serve it."""
        try:
            answer = httpx.get(f"{self.url}/endpoints/{endpoint}/metadata", timeout=10)
        except httpx.TransportError:
            return None
        return dict(answer.json()) if answer.status_code == 200 else None

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; its version servers end with it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def start_host(folder: Path, name: str, registry: str, store: str) -> TeamHost:
    """Start a host in `folder` (made here; not a checkout) following `registry` and `store`,
    given as options (the environment names neither); returned once it answers /ping."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "host.log"
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MODELCI_") or k == "MODELCI_SERVE_TOKEN"
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelci",
                "serve",
                "--registry",
                registry,
                "--store",
                store,
                "--port",
                str(port),
                "--name",
                name,
            ],
            cwd=folder,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    host = TeamHost(name, folder, f"http://127.0.0.1:{port}", process, log)

    def answers() -> bool:
        assert process.poll() is None, f"the host exited: {log.read_text(errors='replace')}"
        try:
            return httpx.get(f"{host.url}/ping", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, f"the host {name} answers /ping", deadline_s=DEADLINE_S)
    return host
