"""Recovery times of the local endpoint host, measured in one run against a steady-state baseline.

On a toy model's repository at bench/.work/recovery-bench (the tests' standard-library model: its
server starts in a blink), one version is trained and deployed to staging, which starts the host
on a free loopback port. 16 client threads (httpx, keep-alive, 127.0.0.1) then post one row per
request to the endpoint through the host; every phase is bounded by a duration and a request cap.

- baseline: 16 clients for BASELINE_S, nothing wrong: requests/s, p50, p99. Every ratio below is
  against it.
- host SIGKILL (the host process only): (a) its version servers exit with it: no orphan left
  10 s after the kill. (b) the endpoint comes back by itself, no modelci command run: the
  supervisor (`modelci serve`) starts the host again on the same socket, which starts its version
  server; from the kill until the endpoint answers 200 again, target <= 10 s (watched for
  AUTO_WATCH_S).
- `modelci serve` SIGKILL (the supervisor: the whole thing): (c) the host and its version servers
  die with it, no orphan left. (d) the next `modelci deploy` of the same version (it answers
  `unchanged`) starts a new supervisor and host: from that deploy's start until the endpoint
  answers 200, target <= 10 s.
- version server SIGKILL under 16 clients (at most LOAD_S, LOAD_CAP requests): the fraction of
  requests failed (target <= 1%: at most what was in flight) and the time from the kill until
  the first 200 to a request sent after it (target <= 5 s); throughput over the phase vs baseline.
- registry made unreadable under load: .modelci/registry.db moved away REGISTRY_FAULT_AFTER_S into
  REGISTRY_LOAD_S of 16 clients, then moved back: failed requests (target 0), /-/health degraded
  meanwhile and ok again after (target: both seen), throughput vs baseline.

Run: `.venv/bin/python bench/recovery_bench.py` from the repository root (after scripts/setup).
Loopback only; everything started is stopped at the end (`serve --stop`, then any process left
that names the bench's repository is killed). Exits 0 whatever the figures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "recovery-bench"
REPO = WORK / "repo"
sys.path.insert(0, str(ROOT))
from tests.support.hosts import JSON, ROW, alive, processes_of  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.toy import INFERENCE, SERVED_SPEC, toy_rows, train_script  # noqa: E402

CLIENTS = 16
BASELINE_S = 5.0
AUTO_WATCH_S = 30.0  # how long the endpoint is watched for coming back by itself
ORPHAN_WAIT_S = 10.0
LOAD_S = 10.0
LOAD_CAP = 40_000
KILL_AFTER_S = 2.0
REGISTRY_LOAD_S = 8.0
REGISTRY_FAULT_AFTER_S = 1.0
REGISTRY_BACK_BEFORE_END_S = 2.0  # the registry is moved back this long before the load ends
STEP_TIMEOUT_S = 300.0
EXPECTED = 3.5  # the toy answers 1 + 2 + its bias of 0.5

TARGETS = {
    "auto": "<= 10 s",
    "orphans": "0",
    "manual": "<= 10 s",
    "server_failed": "<= 1%",
    "server_back": "<= 5 s",
    "registry_failed": "0",
    "registry_health": "seen",
}


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCI_", "GIT_"))}
    env.update(
        {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
            "MODELCI_SERVE_PORT": str(free_port()),  # not 8080: the user's own host
            "NO_COLOR": "1",
        }
    )
    return env


def run(env: dict[str, str], command: list[str], check: bool = True) -> str:
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, cwd=REPO
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}: "
            f"{(done.stdout + done.stderr).strip()[-800:]}"
        )
    return done.stdout


def modelci(env: dict[str, str], *args: str, check: bool = True) -> str:
    return run(env, [sys.executable, "-m", "modelci", "-C", str(REPO), *args], check)


def make_repository(env: dict[str, str]) -> str:
    """The toy model, committed and trained once; its version."""
    shutil.rmtree(WORK, ignore_errors=True)
    (REPO / "models/toy").mkdir(parents=True)
    (REPO / "data/toy").mkdir(parents=True)
    (REPO / ".gitignore").write_text(".modelci/\n")
    (REPO / "models/toy/model.toml").write_text(SERVED_SPEC.format(bias=0.5))
    (REPO / "models/toy/train.py").write_text(train_script())
    (REPO / "models/toy/inference.py").write_text(INFERENCE)
    (REPO / "models/toy/requirements.txt").write_text("")
    for name in ("train", "test"):
        (REPO / f"data/toy/{name}.csv").write_text(toy_rows(20))
    run(env, ["git", "init", "-q", "-b", "main"])
    run(env, ["git", "add", "-A"])
    run(env, ["git", "commit", "-q", "-m", "toy model"])
    trained = json.loads(modelci(env, "train", "toy", "--json"))
    return str(trained["versions"][0]["version"])


def deploy(env: dict[str, str], version: str) -> dict[str, Any]:
    outcome: dict[str, Any] = json.loads(
        modelci(
            env,
            "deploy",
            "toy",
            "--env",
            "staging",
            "--version",
            version,
            "--skip-tests",
            "--json",
            check=False,
        )
    )
    if outcome.get("status") not in ("deployed", "unchanged"):
        raise RuntimeError(f"deploy of {version} did not succeed: {outcome}")
    return outcome


def host_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads((REPO / ".modelci/serve/serve.json").read_text())
    return state


def endpoint() -> dict[str, Any]:
    answer = httpx.get(f"{host_state()['url']}/-/endpoints", timeout=10)
    found: dict[str, Any] = answer.json()["endpoints"]["toy-staging"]
    return found


def version_servers() -> list[int]:
    """Live version servers serving from the bench repository's .modelci folder."""
    found = []
    for pid in processes_of(REPO):
        try:
            if b"modelci.runtime.server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def answers(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.post(url, content=ROW, headers=JSON, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Request:
    sent: float
    done: float
    ok: bool
    failure: str | None


@dataclass
class Load:
    """CLIENTS threads posting to `url` until stopped, `seconds` pass or `cap` requests are made;
    every request's send and answer times and whether it got the toy's answer."""

    url: str
    seconds: float
    cap: int = LOAD_CAP
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0
    ended: float = 0.0

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        self.ended = time.monotonic()

    def wait(self) -> None:
        """Until the duration or the cap is over."""
        while time.monotonic() - self.started < self.seconds and self.count() < self.cap:
            time.sleep(0.05)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def _client(self) -> None:
        deadline = self.started + self.seconds
        with httpx.Client(headers=JSON, timeout=40) as client:
            while not self.stop.is_set() and time.monotonic() < deadline:
                with self.lock:
                    if len(self.requests) >= self.cap:
                        return
                sent = time.monotonic()
                failure = None
                try:
                    answer = client.post(self.url, content=ROW)
                    if answer.status_code != 200 or answer.json()["predictions"][0] != EXPECTED:
                        failure = f"{answer.status_code} {answer.text[:120]}"
                except (httpx.HTTPError, ValueError, KeyError) as error:
                    failure = f"{type(error).__name__}: {error}"
                with self.lock:
                    self.requests.append(Request(sent, time.monotonic(), failure is None, failure))

    # figures over [since, until) of send times, or the whole phase
    def failures(self) -> list[str]:
        return [r.failure for r in self.requests if r.failure]

    def rate(self) -> float:
        return len(self.requests) / max(self.ended - self.started, 1e-9)

    def latencies_ms(self) -> list[float]:
        return sorted((r.done - r.sent) * 1000 for r in self.requests if r.ok)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(fraction * len(values)))]


# --- the phases -------------------------------------------------------------------------------

Row = tuple[str, str, str, str, bool]


@dataclass
class Baseline:
    rate: float
    p50_ms: float
    p99_ms: float

    def against(self, load: Load) -> str:
        latencies = load.latencies_ms()
        return (
            f"{load.rate():,.0f} req/s = {load.rate() / self.rate:.2f}x baseline, "
            f"p99 {percentile(latencies, 0.99):.0f} ms = "
            f"{percentile(latencies, 0.99) / self.p99_ms:.1f}x"
        )


def baseline(gateway: str) -> tuple[Baseline, list[Row]]:
    print(f"-- baseline: {CLIENTS} clients for {BASELINE_S:g} s", flush=True)
    with Load(gateway, BASELINE_S) as load:
        load.wait()
    latencies = load.latencies_ms()
    figures = Baseline(load.rate(), percentile(latencies, 0.5), percentile(latencies, 0.99))
    failed = len(load.failures())
    print(
        f"   {len(load.requests)} requests, {figures.rate:,.0f} req/s, p50 {figures.p50_ms:.1f} "
        f"ms, p99 {figures.p99_ms:.1f} ms, {failed} failed",
        flush=True,
    )
    row = (
        f"baseline, {CLIENTS} clients, {BASELINE_S:g} s",
        f"{figures.rate:,.0f}/s",
        f"p50 {figures.p50_ms:.1f} ms, p99 {figures.p99_ms:.1f} ms, {failed} failed",
        "0 failed",
        failed == 0,
    )
    return figures, [row]


def orphans_after(killed: float, servers: list[int]) -> tuple[float, list[int]]:
    """How long after `killed` the version servers `servers` were gone, and those still alive
    ORPHAN_WAIT_S after it."""
    while any(alive(pid) for pid in servers) and time.monotonic() - killed < ORPHAN_WAIT_S:
        time.sleep(0.05)
    return time.monotonic() - killed, [pid for pid in servers if alive(pid)]


def host_killed(gateway: str) -> list[Row]:
    """SIGKILL the host alone; its supervisor is to bring the endpoint back by itself."""
    print("-- host SIGKILL (its supervisor lives on)", flush=True)
    state = host_state()
    host, supervisor = int(state["pid"]), int(state["supervisor"])
    servers = version_servers()
    os.kill(host, signal.SIGKILL)
    killed = time.monotonic()
    servers_gone_s, orphans = orphans_after(killed, servers)
    back_alone = None
    while time.monotonic() - killed < AUTO_WATCH_S:
        if answers(gateway, timeout=1):
            back_alone = time.monotonic() - killed
            break
        time.sleep(0.05)
    auto = f"{back_alone:.2f} s" if back_alone is not None else "no"
    now = host_state()
    print(
        f"   version servers {servers} gone {servers_gone_s:.2f} s after the kill"
        + (f", orphans left: {orphans}" if orphans else "")
        + f"; back by itself: {auto}"
        + ("" if back_alone else f" (watched {AUTO_WATCH_S:g} s)")
        + f"; host pid {host} -> {now['pid']}, supervisor {supervisor} -> {now['supervisor']}",
        flush=True,
    )
    return [
        (
            "host SIGKILL: version servers orphaned",
            str(len(orphans)),
            f"{len(servers)} server(s) exited {servers_gone_s:.2f} s after the kill",
            TARGETS["orphans"],
            not orphans,
        ),
        (
            "host SIGKILL: back by itself -> 200",
            auto,
            f"restarted by its supervisor, no command run (watched {AUTO_WATCH_S:g} s)",
            TARGETS["auto"],
            back_alone is not None and back_alone <= 10,
        ),
    ]


def serve_killed(env: dict[str, str], version: str) -> tuple[str, list[Row]]:
    """SIGKILL `modelci serve` itself (the supervisor); no orphans; then the next deploy."""
    print("-- `modelci serve` SIGKILL (the supervisor: everything)", flush=True)
    state = host_state()
    host, supervisor = int(state["pid"]), int(state["supervisor"])
    servers = version_servers()
    os.kill(supervisor, signal.SIGKILL)
    killed = time.monotonic()
    servers_gone_s, orphans = orphans_after(killed, [host, *servers])
    began = time.monotonic()
    outcome = deploy(env, version)
    deployed_s = time.monotonic() - began
    gateway = f"{outcome['gateway_url']}/invocations"
    while not answers(gateway) and time.monotonic() - began < 60:
        time.sleep(0.05)
    manual_s = time.monotonic() - began
    print(
        f"   host {host} and version servers {servers} gone {servers_gone_s:.2f} s after the "
        "kill" + (f", orphans left: {orphans}" if orphans else "") + f"; `modelci deploy` "
        f"({outcome['status']}) took {deployed_s:.2f} s; endpoint answers {manual_s:.2f} s "
        f"after it began, {time.monotonic() - killed:.1f} s after the kill",
        flush=True,
    )
    rows = [
        (
            "serve SIGKILL: host + servers orphaned",
            str(len(orphans)),
            f"host and {len(servers)} server(s) exited {servers_gone_s:.2f} s after the kill",
            TARGETS["orphans"],
            not orphans,
        ),
        (
            "serve SIGKILL: next `deploy` -> 200",
            f"{manual_s:.2f} s",
            f"the deploy itself {deployed_s:.2f} s ({outcome['status']}, starts a new host)",
            TARGETS["manual"],
            manual_s <= 10,
        ),
    ]
    return gateway, rows


def server_killed(gateway: str, base: Baseline) -> list[Row]:
    print(f"-- version server SIGKILL under {CLIENTS} clients", flush=True)
    before = endpoint()
    with Load(gateway, LOAD_S) as load:
        time.sleep(KILL_AFTER_S)
        os.kill(int(before["pid"]), signal.SIGKILL)
        killed = time.monotonic()
        load.wait()
    after = endpoint()
    failures = load.failures()
    fraction = len(failures) / max(len(load.requests), 1)
    back = min((r.done for r in load.requests if r.ok and r.sent >= killed), default=None)
    back_s = None if back is None else back - killed
    # the longest stretch after the kill with no answer at all: what a client waited
    done = sorted(r.done for r in load.requests if r.ok and r.done >= killed)
    stall_s = max((b - a for a, b in zip([killed, *done], done, strict=False)), default=0.0)
    print(
        f"   {len(failures)} of {len(load.requests)} failed ({fraction:.2%}) "
        f"{failures[:2]}; first 200 to a request sent after the kill: "
        + (f"{back_s:.2f} s" if back_s is not None else "none")
        + f"; longest stretch without an answer {stall_s:.2f} s; server pid {before['pid']} -> "
        f"{after['pid']}, restarts {after['restarts']}",
        flush=True,
    )
    return [
        (
            "server SIGKILL: requests failed",
            f"{fraction:.2%}",
            f"{len(failures)} of {len(load.requests)}; " + base.against(load),
            TARGETS["server_failed"],
            fraction <= 0.01,
        ),
        (
            "server SIGKILL: kill -> 200 again",
            "none" if back_s is None else f"{back_s:.2f} s",
            f"longest stretch without an answer {stall_s:.2f} s (baseline p99 "
            f"{base.p99_ms:.0f} ms)",
            TARGETS["server_back"],
            back_s is not None and back_s <= 5,
        ),
    ]


def registry_lost(gateway: str, base: Baseline) -> list[Row]:
    print(f"-- registry moved away under {CLIENTS} clients for {REGISTRY_LOAD_S:g} s", flush=True)
    health_url = f"{host_state()['url']}/-/health"
    database = REPO / ".modelci/registry.db"
    moved = database.with_name("registry.db.moved")
    seen: set[str] = set()
    back_at = REGISTRY_LOAD_S - REGISTRY_BACK_BEFORE_END_S
    try:
        with Load(gateway, REGISTRY_LOAD_S) as load:
            time.sleep(REGISTRY_FAULT_AFTER_S)
            database.rename(moved)
            while time.monotonic() - load.started < back_at:
                seen.add(httpx.get(health_url, timeout=10).json()["status"])
                time.sleep(0.25)
            moved.rename(database)
            restored = time.monotonic()
            healthy_again = None
            while time.monotonic() - restored < 10:
                if httpx.get(health_url, timeout=10).json()["status"] == "ok":
                    healthy_again = time.monotonic() - restored
                    break
                time.sleep(0.1)
            load.wait()
    finally:
        if moved.exists() and not database.exists():
            moved.rename(database)
    failures = load.failures()
    print(
        f"   {len(failures)} of {len(load.requests)} failed {failures[:2]}; /-/health said "
        f"{sorted(seen)} while it was gone, ok again "
        + ("never" if healthy_again is None else f"{healthy_again:.2f} s after it was back"),
        flush=True,
    )
    return [
        (
            "registry moved away: requests failed",
            str(len(failures)),
            f"of {len(load.requests)}; " + base.against(load),
            TARGETS["registry_failed"],
            not failures,
        ),
        (
            "registry moved away: /-/health",
            "degraded" if "degraded" in seen else "not seen",
            "ok again "
            + ("never" if healthy_again is None else f"{healthy_again:.2f} s after it was back"),
            TARGETS["registry_health"],
            "degraded" in seen and healthy_again is not None,
        ),
    ]


def stop_everything(env: dict[str, str]) -> list[int]:
    """`serve --stop`, then SIGKILL whatever still names the bench's repository."""
    if REPO.exists():
        modelci(env, "serve", "--stop", "--json", check=False)
    deadline = time.monotonic() + 10
    while processes_of(REPO) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_of(REPO)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return left


def main() -> int:
    began = time.monotonic()
    env = environment()
    rows: list[Row] = []
    try:
        print(f"-- toy repository at {REPO}: train, deploy (starts the host)", flush=True)
        version = make_repository(env)
        gateway = f"{deploy(env, version)['gateway_url']}/invocations"
        base, first = baseline(gateway)
        rows += first
        rows += host_killed(gateway)
        gateway, killed = serve_killed(env, version)
        rows += killed
        rows += server_killed(gateway, base)
        rows += registry_lost(gateway, base)
    except (RuntimeError, OSError, subprocess.SubprocessError, httpx.HTTPError) as error:
        print(f"failed: {error}", flush=True)
        rows.append(("the bench ran to its end", "no", str(error)[:56], "yes", False))
    finally:
        left = stop_everything(env)
    if left:
        rows.append(("processes left after `serve --stop`", str(len(left)), "", "0", False))

    print(f"\n{'case':40} {'figure':>10}  {'against':72} {'target':12} result")
    for name, figure, against, target, ok in rows:
        print(f"{name:40} {figure:>10}  {against:72} {target:12} {'PASS' if ok else 'FAIL'}")
    print(f"\nbench took {time.monotonic() - began:.0f} s (one run of each fault)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
