"""The endpoint host as the deploy and fault tests drive it: a toy model repository that
commits and trains versions, the hosts a test started (stopped and checked for leftover
processes at its end), the processes of a repository, and threads that load an endpoint."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelci.registry import open_registry
from modelci.registry.base import Event
from tests.support.cli import CliResult
from tests.support.ports import free_port
from tests.support.repos import GitRepo
from tests.support.toy import INFERENCE, SERVED_SPEC, train_script, write_toy
from tests.support.waiting import wait_until

Run = Callable[..., CliResult]

REGISTRY = "sqlite:///.modelci/registry.db"
DEADLINE_S = 60.0
OUTCOME_KEYS = {
    "model",
    "environment",
    "endpoint",
    "version",
    "previous_version",
    "status",
    "url",
    "gateway_url",
    "reason",
    "moved",
}

TRAIN = train_script()
CANNOT_LOAD = """\
def model_fn(model_dir):
    raise RuntimeError("this version cannot load its model")
"""
# The smoke request is the test channel's first row without its key and label: 0,0.
FAILS_ON_SMOKE_ROW = (
    INFERENCE
    + """
_predict = predict_fn

def predict_fn(data, model):
    if any(float(sum(row)) == 0 for row in data):
        raise RuntimeError("cannot predict an all-zero row")
    return _predict(data, model)
"""
)
SPEC = SERVED_SPEC
ROW = b"[[1, 2]]"  # the toy model answers 3 + bias
JSON = {"content-type": "application/json"}


# --- processes and HTTP ----------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat from the state on (field 3), or [] when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _state(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[0] if fields else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    return _state(pid) not in (None, "Z")


def identity(pid: int) -> tuple[int, str]:
    """A process's pid and start time: pids are reused, the pair is not."""
    fields = _stat(pid)
    return pid, fields[19] if len(fields) > 19 else ""


def still_running(process: tuple[int, str]) -> bool:
    return alive(process[0]) and identity(process[0]) == process


def _describe(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        command = "?"
    return f"{_state(pid)} {command}"


def processes_of(root: Path) -> list[int]:
    """Live processes whose command line names the repository or a path inside it."""
    found = []
    prefix = str(root) + "/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a == str(root) or a.startswith(prefix) for a in arguments) and alive(
            int(entry.name)
        ):
            found.append(int(entry.name))
    return found


def prediction(answer: httpx.Response) -> float:
    assert answer.status_code == 200, answer.text
    value: float = answer.json()["predictions"][0]
    return value


def host_url(root: Path) -> str | None:
    try:
        return str(json.loads((root / ".modelci/serve/serve.json").read_text())["url"])
    except (OSError, ValueError, KeyError):
        return None


class Hosts:
    """The endpoint hosts of a test's repositories, stopped at its end with `serve --stop`."""

    def __init__(self, modelci: Run):
        self.modelci = modelci
        self.roots: list[Path] = []
        self.processes: set[tuple[int, str]] = set()  # every host and server seen
        self.started: list[subprocess.Popen[bytes]] = []

    def endpoints(self, root: Path) -> dict[str, Any]:
        """GET /-/endpoints of the repository's host; every pid seen is checked at the end."""
        url = host_url(root)
        assert url is not None, f"no endpoint host runs for {root}"
        document: dict[str, Any] = httpx.get(f"{url}/-/endpoints", timeout=10).json()
        pids = [document["pid"], *(e["pid"] for e in document["endpoints"].values() if "pid" in e)]
        self.processes.update(identity(pid) for pid in pids)
        return dict(document["endpoints"])

    def start(self, root: Path) -> str:
        """Start `modelci serve` in the background on a free port; its URL once it answers."""
        if root not in self.roots:
            self.roots.append(root)
        port = free_port()
        self.started.append(
            subprocess.Popen(
                [sys.executable, "-m", "modelci", "-C", str(root), "serve", "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/ping", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, f"the host at {url} answers /ping", deadline_s=DEADLINE_S)
        return url

    def stop(self) -> None:
        for root in self.roots:
            if host_url(root) is not None:
                with contextlib.suppress(httpx.TransportError):
                    self.endpoints(root)
            stopped = self.modelci("-C", root, "serve", "--stop", "--json")
            assert stopped.code == 0, stopped.stdout + stopped.stderr
        for process in self.started:
            process.wait(timeout=30)

        def left() -> dict[int, str]:
            running = {
                pid: _describe(pid)
                for pid, started in self.processes
                if still_running((pid, started))
            }
            running.update(
                (pid, _describe(pid)) for root in self.roots for pid in processes_of(root)
            )
            return running

        # `serve --stop` returns once the host has removed its state file, a moment before
        # its process is gone
        wait_until(
            lambda: not left(),
            "every process of the test ends",
            details=lambda: f"processes left running: {left()}",
        )


class Toy:
    """A repository with the toy model; each call of `version` commits and trains one."""

    def __init__(self, repo: GitRepo, modelci: Run, hosts: Hosts):
        self.repo = repo
        self.root = repo.root
        self.modelci = modelci
        self.hosts = hosts

    def version(self, bias: float = 0.5, inference: str = INFERENCE, test: bool = True) -> str:
        self.repo.write("models/toy/model.toml", SPEC.format(bias=bias))
        self.repo.write("models/toy/inference.py", inference)
        sha = self.repo.commit(f"toy, bias {bias}")
        trained = self.modelci("-C", self.root, "train", "toy")
        assert trained.code == 0, trained.stdout + trained.stderr
        if test:
            tested = self.modelci("-C", self.root, "test", "toy", "--skip", "reproducibility")
            assert tested.code == 0, tested.stdout + tested.stderr
        return f"toy-{sha[:12]}"

    def deploy(self, *options: str, env: str = "staging") -> CliResult:
        return self.modelci("-C", self.root, "deploy", "toy", "--env", env, "--json", *options)

    def deployed(self, *options: str, env: str = "staging") -> dict[str, Any]:
        result = self.deploy(*options, env=env)
        assert result.code == 0, result.stdout + result.stderr
        outcome: dict[str, Any] = result.json()
        assert outcome["status"] == "deployed", outcome
        return outcome

    def events(self, kind: str | None = None) -> list[Event]:
        with open_registry(REGISTRY, self.root) as registry:
            return registry.events("toy", kind=kind)

    def pointer(self, env: str = "staging") -> str | None:
        status = self.modelci("-C", self.root, "status", "--json")
        assert status.code == 0, status.stdout + status.stderr
        [model] = status.json()["models"]
        served = model["environments"][env]
        return None if served is None else str(served["version"])

    def endpoints(self) -> dict[str, Any]:
        return self.hosts.endpoints(self.root)


class Load:
    """Threads posting to one URL until stopped (or a total cap), recording every answer."""

    def __init__(self, url: str, threads: int = 8, cap: int = 2000, pause_s: float = 0.03):
        self.url = url
        self.stop = threading.Event()
        self.cap = cap
        self.pause_s = pause_s
        self.lock = threading.Lock()
        self.answers: list[tuple[float, float]] = []  # (time, prediction)
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(headers=JSON, timeout=30) as client:
            while not self.stop.is_set():
                with self.lock:
                    if len(self.answers) + len(self.failures) >= self.cap:
                        return
                try:
                    answer = client.post(self.url, content=ROW)
                    value = answer.json()["predictions"][0] if answer.status_code == 200 else None
                    failure = None if value is not None else f"{answer.status_code} {answer.text}"
                except (httpx.HTTPError, ValueError, KeyError) as error:
                    value, failure = None, f"{type(error).__name__}: {error}"
                with self.lock:
                    if failure is None:
                        self.answers.append((time.monotonic(), value))
                    else:
                        self.failures.append(failure)
                self.stop.wait(self.pause_s)  # pacing, so the cap outlasts the swaps

    def count(self) -> int:
        with self.lock:
            return len(self.answers) + len(self.failures)


def get_json(url: str, **options: Any) -> Any:
    """GET a JSON document, or None when nothing answers."""
    try:
        answer = httpx.get(url, timeout=10, **options)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


def watched_hosts(modelci: Run, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    """The body of a `hosts` fixture: a free port for `deploy` to start the host on; every
    host stopped, and checked for leftover processes, after the test."""
    monkeypatch.setenv("MODELCI_SERVE_PORT", str(free_port()))
    watch = Hosts(modelci)
    yield watch
    watch.stop()


def hosted_toy(repo: GitRepo, modelci: Run, hosts: Hosts, shared_envs: Path) -> Toy:
    """The toy in `repo` with no version yet (each `Toy.version` writes its spec and
    handler), its environments in `shared_envs` (built once for the tests sharing it), its
    endpoint host stopped by `hosts` at the end."""
    write_toy(repo, "", train=TRAIN, inference=None)
    (repo.root / ".modelci").mkdir()
    (repo.root / ".modelci" / "envs").symlink_to(shared_envs, target_is_directory=True)
    hosts.roots.append(repo.root)
    return Toy(repo, modelci, hosts)
