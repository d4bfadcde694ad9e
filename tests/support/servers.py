"""Real servers for tests and benchmarks, started as plain processes on 127.0.0.1:

- `running_moto()`: the AWS API emulator (`moto_server`, from `moto[server]`) for S3, ECR and
  SageMaker;
- `running_oci_registry()`: a real OCI registry (Debian's `docker-registry`, the CNCF
  distribution server) with a filesystem store in a temporary folder.

Each binds a free port, is waited for with a deadline, and is stopped (and its folder removed)
when the `with` block ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.waiting import wait_until

READY_DEADLINE_S = 30.0
STOP_DEADLINE_S = 10.0
REGISTRY_BIN = Path("/usr/bin/docker-registry")
# The dummy secret key tests give boto3; tests check it never shows in output or the registry.
SECRET_ACCESS_KEY = "modelci-test-secret-d0n0tl0g"


class ServerUnavailable(RuntimeError):
    """The server's program is not installed here."""


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return "(no log)"


def _ready(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    """Wait for `ready`; fail early when the process died, late at the deadline."""
    wait_until(
        ready,
        f"{what} ready",
        deadline_s=READY_DEADLINE_S,
        process=process,
        details=lambda: _tail(log),
    )


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def moto_server_bin() -> Path:
    """`moto_server` beside this interpreter (the project's venv)."""
    found = Path(sys.executable).parent / "moto_server"
    if found.exists():
        return found
    which = shutil.which("moto_server")
    if which is None:
        raise ServerUnavailable("moto_server not found: install moto[server] (a dev dependency)")
    return Path(which)


@contextmanager
def running_moto() -> Iterator[str]:
    """Start the AWS API emulator on a free port of 127.0.0.1; yield its URL."""
    binary = moto_server_bin()
    folder = Path(tempfile.mkdtemp(prefix="modelci-moto-"))
    log = folder / "moto.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_CALL_RESET_API": "true"},
        )
    try:
        _ready(_answers(f"{url}/moto-api/data.json"), process, "moto_server", log)
        yield url
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@contextmanager
def running_oci_registry() -> Iterator[str]:
    """Start `docker-registry` with a filesystem store in a temporary folder, plain http on a
    free port of 127.0.0.1, no auth; yield `127.0.0.1:<port>` once `GET /v2/` answers 200."""
    if not REGISTRY_BIN.exists():
        raise ServerUnavailable(
            f"{REGISTRY_BIN} not found: run scripts/ensure-oci-registry "
            "(Debian package docker-registry)"
        )
    folder = Path(tempfile.mkdtemp(prefix="modelci-registry-"))
    port = free_port()
    config = folder / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=folder / "data", port=port))
    log = folder / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(REGISTRY_BIN), "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    try:
        _ready(_answers(f"http://127.0.0.1:{port}/v2/"), process, "docker-registry", log)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
