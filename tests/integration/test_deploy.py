"""`modelci deploy`, `serve` and `invoke` with real processes: the endpoint host, each version's
server in the model's own environment, and real HTTP on 127.0.0.1.

Every test's repository takes its model environment from one folder shared by the module (its
`.modelci/envs` links there): the toy model's environment is the same in every repository, and
building it once keeps this file fast. Every test stops the hosts it started and checks that no
process of its repository is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
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

pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module")
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


@pytest.fixture
def hosts(modelci: Run, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    """A free port for `deploy` to start the host on; every host stopped and checked after."""
    monkeypatch.setenv("MODELCI_SERVE_PORT", str(free_port()))
    watch = Hosts(modelci)
    yield watch
    watch.stop()


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


@pytest.fixture
def toy(git_repo: Callable[..., GitRepo], modelci: Run, hosts: Hosts, shared_envs: Path) -> Toy:
    repo = git_repo()
    write_toy(repo, "", train=TRAIN, inference=None)  # each version writes its spec and handler
    (repo.root / ".modelci").mkdir()
    (repo.root / ".modelci" / "envs").symlink_to(shared_envs, target_is_directory=True)
    hosts.roots.append(repo.root)
    return Toy(repo, modelci, hosts)


# --- deploy and invoke -------------------------------------------------------------------------


def test_deploy_to_staging_then_invoke(toy: Toy, tmp_path: Path) -> None:
    version = toy.version()
    result = toy.deploy()
    assert result.code == 0, result.stdout + result.stderr
    outcome = result.json()
    assert set(outcome) == OUTCOME_KEYS
    assert outcome["model"] == "toy" and outcome["environment"] == "staging"
    assert outcome["endpoint"] == "toy-staging" and outcome["version"] == version
    assert outcome["previous_version"] is None and outcome["status"] == "deployed"
    assert outcome["reason"] is None
    gateway, own = outcome["gateway_url"], outcome["url"]
    assert gateway == f"{host_url(toy.root)}/endpoints/toy-staging"
    assert own.startswith("http://127.0.0.1:") and own != host_url(toy.root)
    assert toy.pointer() == version

    body = tmp_path / "row.json"
    body.write_bytes(ROW)
    invoked = toy.modelci("-C", toy.root, "invoke", "toy-staging", "--data", body)
    assert invoked.code == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"predictions": [3.5]}
    invoked = toy.modelci("-C", toy.root, "invoke", "toy-staging", "--data", body, "--json")
    assert invoked.code == 0 and invoked.json()["status"] == 200
    assert json.loads(invoked.json()["body"]) == {"predictions": [3.5]}

    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5
    assert prediction(httpx.post(f"{own}/invocations", content=ROW, headers=JSON)) == 3.5
    ping = httpx.get(f"{gateway}/ping")
    assert ping.status_code == 200
    metadata = httpx.get(f"{gateway}/metadata").json()
    assert metadata["version"] == version and metadata["environment"] == "staging"
    assert metadata["commit"] == toy.repo.sha() and metadata["model"] == "toy"
    [endpoint] = toy.endpoints().values()
    assert endpoint["version"] == version and endpoint["healthy"] is True
    assert endpoint["url"] == own and endpoint["restarts"] == 0

    # bad requests get a 4xx with a message, and the host keeps serving
    unknown = httpx.post(
        f"{host_url(toy.root)}/endpoints/nope-staging/invocations", content=ROW, headers=JSON
    )
    assert unknown.status_code == 404
    assert "'nope-staging' is not deployed" in unknown.json()["message"]
    bad = httpx.post(f"{gateway}/invocations", content=b"[[1, 2", headers=JSON)
    assert bad.status_code == 400 and "not valid JSON" in bad.text
    missing = toy.modelci("-C", toy.root, "invoke", "nope-staging", "--data", body, "--json")
    assert missing.code == 1 and missing.json()["status"] == 404
    assert "'nope-staging' is not deployed" in missing.json()["body"]
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5


def test_aws_sdk_invokes_the_endpoint(toy: Toy) -> None:
    boto3 = pytest.importorskip("boto3")
    toy.version()
    toy.deployed()
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=host_url(toy.root),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    answer = client.invoke_endpoint(
        EndpointName="toy-staging", Body=ROW, ContentType="application/json"
    )
    assert answer["ContentType"] == "application/json"
    assert json.loads(answer["Body"].read()) == {"predictions": [3.5]}


def test_second_version_swaps_and_older_commit_is_refused(toy: Toy) -> None:
    first = toy.version()
    old_url = toy.deployed()["url"]
    second = toy.version(bias=1.5)
    outcome = toy.deployed()
    assert outcome["version"] == second and outcome["previous_version"] == first
    assert outcome["url"] != old_url
    gateway = outcome["gateway_url"]
    assert httpx.get(f"{gateway}/metadata").json()["version"] == second
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 4.5
    assert [e["version"] for e in toy.endpoints().values()] == [second]

    refused = toy.deploy("--version", first)
    assert refused.code == 1
    message = refused.json()["error"]["message"]
    assert f"{first} is older than {second}, which is in force" in message
    assert toy.events()[0].kind == "deploy_refused" and toy.pointer() == second
    forced = toy.deployed("--version", first, "--force")
    assert forced["previous_version"] == second
    assert httpx.get(f"{gateway}/metadata").json()["version"] == first
    assert toy.events("deploy")[0].details["forced"] is True


def test_untested_version_is_refused_unless_tests_are_skipped(toy: Toy) -> None:
    version = toy.version(test=False)
    refused = toy.deploy()
    assert refused.code == 1
    assert "tests have not run" in refused.json()["error"]["message"]
    assert "--skip-tests" in refused.json()["error"]["message"]
    [event] = toy.events("deploy_refused")
    assert event.version == version and event.environment == "staging"
    assert toy.pointer() is None
    assert host_url(toy.root) is None  # a refusal starts nothing

    outcome = toy.deployed("--skip-tests")
    assert outcome["version"] == version
    assert toy.events("deploy")[0].details["skip_tests"] is True
    assert toy.pointer() == version

    untested = toy.version(bias=1.5, test=False)
    refused = toy.deploy()
    assert refused.code == 1 and f"{untested}'s tests have not run" in refused.stdout
    assert toy.events()[0].kind == "deploy_refused"
    assert toy.events()[0].details["reasons"] == [
        f"{untested}'s tests have not run (`modelci test`)"
    ]
    assert toy.pointer() == version
    gateway = outcome["gateway_url"]
    assert httpx.get(f"{gateway}/metadata").json()["version"] == version


def test_later_environment_takes_only_what_the_one_before_served(toy: Toy) -> None:
    version = toy.version()
    refused = toy.deploy("--version", version, env="production")
    assert refused.code == 1
    assert f"{version} has not been deployed to staging first" in refused.json()["error"]["message"]
    assert toy.events()[0].kind == "deploy_refused" and toy.pointer("production") is None

    outcome = toy.deployed("--version", version, "--force", env="production")
    assert outcome["endpoint"] == "toy" and outcome["gateway_url"].endswith("/endpoints/toy")
    [event] = toy.events("deploy")
    assert event.environment == "production" and event.details["forced"] is True
    assert any("deployed to staging first" in p for p in event.details["overridden"])
    assert httpx.get(f"{outcome['gateway_url']}/metadata").json()["environment"] == "production"


# --- failed deploys ----------------------------------------------------------------------------


def test_version_that_cannot_start_is_rolled_back(toy: Toy) -> None:
    good = toy.version()
    gateway = toy.deployed()["gateway_url"]
    broken = toy.version(bias=2.0, inference=CANNOT_LOAD, test=False)
    result = toy.deploy("--skip-tests")
    assert result.code == 1
    outcome = result.json()
    assert set(outcome) == OUTCOME_KEYS
    assert outcome["status"] == "rolled_back" and outcome["version"] == broken
    assert outcome["previous_version"] == good
    assert "this version cannot load its model" in outcome["reason"]
    kinds = [e.kind for e in toy.events()[:3]]
    assert kinds == ["rollback", "deploy_failed", "deploy"]
    assert toy.events("rollback")[0].to_version == good
    assert toy.pointer() == good
    assert httpx.get(f"{gateway}/metadata").json()["version"] == good
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5

    # staging never served the broken version, so production does not take it either
    refused = toy.deploy("--version", broken, "--skip-tests", env="production")
    assert refused.code == 1
    assert "has not been deployed to staging first" in refused.json()["error"]["message"]


def test_first_deploy_that_fails_leaves_no_pointer(toy: Toy) -> None:
    toy.version(inference=CANNOT_LOAD, test=False)
    result = toy.deploy("--skip-tests")
    assert result.code == 1
    outcome = result.json()
    assert outcome["status"] == "failed" and outcome["previous_version"] is None
    assert outcome["url"] is None and outcome["gateway_url"] is None
    assert toy.pointer() is None
    assert [e.kind for e in toy.events()[:2]] == ["rollback", "deploy_failed"]
    unknown = httpx.post(
        f"{host_url(toy.root)}/endpoints/toy-staging/invocations", content=ROW, headers=JSON
    )
    assert unknown.status_code == 404
    assert "cannot load its model" in unknown.json()["message"]


def test_failed_smoke_request_rolls_back(toy: Toy) -> None:
    good = toy.version()
    gateway = toy.deployed()["gateway_url"]
    toy.version(bias=1.5, inference=FAILS_ON_SMOKE_ROW, test=False)
    result = toy.deploy("--skip-tests")
    assert result.code == 1
    outcome = result.json()
    assert outcome["status"] == "rolled_back" and outcome["previous_version"] == good
    assert "smoke request got 500" in outcome["reason"]
    assert toy.pointer() == good
    wait_until(
        lambda: httpx.get(f"{gateway}/metadata").json()["version"] == good,
        "the endpoint serves the previous version again",
        deadline_s=DEADLINE_S,
    )
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5


# --- the host ----------------------------------------------------------------------------------


def test_crashed_version_server_is_restarted(toy: Toy) -> None:
    toy.version()
    gateway = toy.deployed()["gateway_url"]
    [before] = toy.endpoints().values()
    os.kill(before["pid"], signal.SIGKILL)
    statuses: set[int] = set()

    def restarted() -> bool:
        statuses.add(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON).status_code)
        endpoint = toy.endpoints()["toy-staging"]
        return bool(endpoint["healthy"] and endpoint["restarts"] == 1)

    wait_until(restarted, "the crashed server is restarted and healthy", deadline_s=DEADLINE_S)
    assert statuses <= {200, 503}, statuses
    [after] = toy.endpoints().values()
    assert after["pid"] != before["pid"] and after["version"] == before["version"]
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5


def test_serve_stop_and_one_host_per_repository(toy: Toy) -> None:
    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json() == {"stopped": False, "running": False}
    # a state file left by a host killed outright, whose pid now belongs to another process
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state = toy.root / ".modelci/serve/serve.json"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"pid": bystander.pid, "url": "http://127.0.0.1:9"}))
        stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
        assert stopped.code == 0 and stopped.json() == {"stopped": False, "running": False}
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    toy.repo.write("models/toy/model.toml", SPEC.format(bias=0.5))
    toy.repo.write("models/toy/inference.py", INFERENCE)
    toy.repo.commit()
    url = toy.hosts.start(toy.root)
    assert toy.endpoints() == {}
    pid = json.loads((toy.root / ".modelci/serve/serve.json").read_text())["pid"]

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelci",
            "-C",
            str(toy.root),
            "serve",
            "--port",
            str(free_port()),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2, second.stdout + second.stderr
    message = json.loads(second.stdout)["error"]["message"]
    assert "already runs for this repository" in message
    assert url in message and f"pid {pid}" in message

    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json() == {"stopped": True, "pid": pid, "url": url}
    assert host_url(toy.root) is None


# --- swaps under load --------------------------------------------------------------------------


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


def test_swaps_under_load_drop_no_request(toy: Toy) -> None:
    first = toy.version()
    second = toy.version(bias=1.5)
    gateway = toy.deployed("--version", first)["gateway_url"]
    swaps = [(second,), (first, "--force"), (second,)]
    windows = []
    with Load(f"{gateway}/invocations") as load:
        wait_until(lambda: load.count() >= 20, "the load is running", deadline_s=DEADLINE_S)
        for version, *options in swaps:
            began = time.monotonic()
            outcome = toy.deployed("--version", version, *options)
            assert outcome["version"] == version
            windows.append((began, time.monotonic()))
        done = load.count()
        wait_until(
            lambda: load.count() >= done + 20,
            "more answers after the last swap",
            deadline_s=DEADLINE_S,
        )
        assert load.count() < load.cap, "the cap was reached before the swaps were done"
    assert load.failures == [], load.failures[:5]
    values = [value for _, value in load.answers]
    assert set(values) == {3.5, 4.5}
    for began, ended in windows:
        assert sum(began <= at <= ended for at, _ in load.answers) >= 5
    last = windows[-1][1]
    assert {value for at, value in load.answers if at > last + 1} <= {4.5}
    assert [e["version"] for e in toy.endpoints().values()] == [second]
