"""Benchmark density: many endpoint versions on one endpoint host, in shared processes vs one
process per version.

    .venv/bin/python bench/density_bench.py [--models 200] [--per-process 10] [--budget-s 300]

On a committed copy of examples/ at bench/.work/density-bench it trains the churn model once,
then generates `--models` copies of its folder (models/m0000...), commits them, and registers
one version of each with the churn artifact and lock (so nothing is trained again), pointed at
by staging and production: 2 x models endpoints, all in one environment. m0000 says
`[serve] isolation = "process"` (the per-process reference of the throughput figure).

1. Per-process mode (`[serve] isolation = "process"` in modelci.toml): the first
   `--per-process` models' pointers only; `modelci serve` is started and waited for until
   every endpoint is healthy; the host's memory (PSS summed over the supervisor, the host and
   every version server, from /proc/<pid>/smaps_rollup; RSS beside it) gives the cost per
   version, projected to 200 x 2.
2. Shared mode (`isolation = "shared"`, `idle_unload = 30`): every model's pointers; the host
   is started again and waited for, within `--budget-s` (what is deployed by then is measured,
   and the rest projected from the measured cost per version). Memory with every version
   loaded (each sent one request), then after every version was unloaded for idleness; then
   the first request after unloading, for 20 versions (target <= 1 s each), against the
   request that follows it; then wrk (8 connections, 10 s) through the host's gateway on a
   version in the shared process and on m0000 in its own process (target: ratio >= 0.8).
   The target for memory: 200 x 2 versions projected to fit in 24 GiB, loaded, with the
   host's other processes.
3. Convergence, on the same shared host: a second version of some models is registered (an
   empty commit, the same artifact and lock); 3 production pointers are moved one at a time
   (compare-and-set through the registry, as deploy/rollout.py does), then 50 staging
   pointers back to back without waiting; /-/endpoints is polled until each endpoint serves
   its new version healthily. Time to converge for one change (median) and for the 50
   (target: <= 60 s).

Everything started is stopped at the end. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import free_port, http, parse_wrk, run_wrk

from modelci.registry import open_registry
from modelci.registry.base import Event, VersionRecord

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "density-bench"
REPO = WORK / "repo"
ENVS = ROOT / "bench" / ".work" / "density-envs"  # kept between runs: built once
REGISTRY = "sqlite:///.modelci/registry.db"
ENVIRONMENTS = ("staging", "production")
TARGET_VERSIONS = 400  # 200 models x 2 environments
MACHINE_GIB = 24.0
IDLE_UNLOAD_S = 30
LATENCY_SAMPLES = 20
LATENCY_TARGET_S = 1.0
THROUGHPUT_TARGET = 0.8
WRK_SECONDS = 10
STEP_TIMEOUT_S = 900.0
CONVERGE_CHANGES = 50  # pointers moved at once
CONVERGE_SINGLES = 3  # single pointer changes timed one after another, the baseline
CONVERGE_TARGET_S = 60.0
CONVERGE_BUDGET_S = 180.0
CONVERGE_POLL_S = 0.25
MIB = 2**20


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCI_", "GIT_"))}
    env.update(
        {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
            "NO_COLOR": "1",
        }
    )
    return env


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}: "
            f"{(done.stdout + done.stderr).strip()[-800:]}"
        )
    return done.stdout


def modelci(env: dict[str, str], *args: str) -> str:
    return run([sys.executable, "-m", "modelci", "-C", str(REPO), *args], env)


def git(env: dict[str, str], *args: str) -> str:
    return run(["git", "-C", str(REPO), *args], env).strip()


def settings(isolation: str) -> None:
    (REPO / "modelci.toml").write_text(
        '[project]\nmodels = ["models/*"]\n\n'
        f'[serve]\nisolation = "{isolation}"\nidle_unload = {IDLE_UNLOAD_S}\n'
    )


def make_repository(env: dict[str, str], models: int) -> list[str]:
    """examples/ committed, churn trained once, `models` copies registered; their names."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    shutil.copytree(
        ROOT / "examples", REPO, ignore=shutil.ignore_patterns("__pycache__", ".modelci")
    )
    with (REPO / ".gitignore").open("a") as ignore:
        ignore.write(".modelci/\n")
    ENVS.mkdir(parents=True, exist_ok=True)
    (REPO / ".modelci").mkdir()
    (REPO / ".modelci" / "envs").symlink_to(ENVS, target_is_directory=True)
    settings("process")
    git(env, "init", "-q", "-b", "main")
    git(env, "add", "-A")
    git(env, "commit", "-q", "-m", "example repository")
    modelci(env, "train", "churn")
    churn = f"churn-{git(env, 'rev-parse', 'HEAD')[:12]}"

    source = (REPO / "models/churn/model.toml").read_text()
    names = [f"m{i:04d}" for i in range(models)]
    for name in names:
        folder = REPO / "models" / name
        shutil.copytree(REPO / "models/churn", folder)
        spec = source.replace('name = "churn"', f'name = "{name}"')
        if name == names[0]:
            spec = spec.replace("workers = 1\n", 'workers = 1\nisolation = "process"\n')
        (folder / "model.toml").write_text(spec)
    git(env, "add", "-A")
    git(env, "commit", "-q", "-m", f"{models} copies of churn")
    commit = git(env, "rev-parse", "HEAD")
    with open_registry(REGISTRY, REPO) as registry:
        trained = registry.get_version(churn)
        assert trained is not None and trained.artifact_sha256
        for name in names:
            registry.add_version(
                VersionRecord(
                    version=f"{name}-{commit[:12]}",
                    model=name,
                    commit=commit,
                    status="ready",
                    fingerprint=trained.fingerprint,
                    artifact_uri=trained.artifact_uri,
                    artifact_sha256=trained.artifact_sha256,
                    metrics=trained.metrics,
                    lock_hash=trained.lock_hash,
                    actor="bench",
                    details=trained.details,
                )
            )
    return names


def point(names: list[str]) -> None:
    """Point staging and production of each model at its version."""
    with open_registry(REGISTRY, REPO) as registry:
        for name in names:
            [version] = registry.list_versions(name)
            for environment_name in ENVIRONMENTS:
                if registry.get_pointer(name, environment_name) is not None:
                    continue
                registry.set_pointer(
                    name,
                    environment_name,
                    version.version,
                    expected_generation=None,
                    event=Event(
                        kind="deploy",
                        model=name,
                        version=version.version,
                        environment=environment_name,
                        to_version=version.version,
                        actor="bench",
                    ),
                )


def add_versions(env: dict[str, str], names: list[str]) -> dict[str, str]:
    """A second version of each model, on an empty commit with the same artifact and lock
    (nothing trained): {model: version}."""
    git(env, "commit", "-q", "--allow-empty", "-m", "second versions")
    commit = git(env, "rev-parse", "HEAD")
    added = {}
    with open_registry(REGISTRY, REPO) as registry:
        for name in names:
            [first] = registry.list_versions(name)
            record = VersionRecord(
                version=f"{name}-{commit[:12]}",
                model=name,
                commit=commit,
                status="ready",
                fingerprint=first.fingerprint,
                artifact_uri=first.artifact_uri,
                artifact_sha256=first.artifact_sha256,
                metrics=first.metrics,
                lock_hash=first.lock_hash,
                actor="bench",
                details=first.details,
            )
            registry.add_version(record)
            added[name] = record.version
    return added


def move(moves: dict[str, str], environment_name: str) -> None:
    """Compare-and-set each model's pointer in `environment_name` to its new version, one
    transaction each, back to back (as deploy/rollout.py moves one, without waiting)."""
    with open_registry(REGISTRY, REPO) as registry:
        for name, version in moves.items():
            pointer = registry.get_pointer(name, environment_name)
            registry.set_pointer(
                name,
                environment_name,
                version,
                expected_generation=pointer.generation if pointer else None,
                event=Event(
                    kind="deploy",
                    model=name,
                    version=version,
                    environment=environment_name,
                    from_version=pointer.version if pointer else None,
                    to_version=version,
                    actor="bench",
                ),
            )


# --- processes and memory --------------------------------------------------------------------


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in bytes."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = dict(re.findall(r"^(Pss|Rss):\s+(\d+) kB", text, flags=re.MULTILINE))
    return int(values.get("Pss", 0)) * 1024, int(values.get("Rss", 0)) * 1024


def tree_memory(root: int) -> tuple[int, int]:
    pss = rss = 0
    for pid in descendants(root):
        one_pss, one_rss = memory(pid)
        pss, rss = pss + one_pss, rss + one_rss
    return pss, rss


class Host:
    """`modelci serve` in the background, on a free port."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (WORK / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelci", "-C", str(REPO), "serve", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def endpoints(self) -> dict[str, Any]:
        status, body = http(f"{self.url}/-/endpoints", timeout=30)
        return json.loads(body) if status == 200 else {}

    def wait_healthy(self, count: int, budget_s: float, watch: Any = None) -> tuple[int, float]:
        """Wait until `count` endpoints are healthy or the budget is spent: (healthy, seconds)."""
        start = time.monotonic()
        healthy = 0
        while time.monotonic() - start < budget_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"modelci serve exited; see {self.log.name}")
            try:
                document = self.endpoints()
            except OSError:
                document = {}
            endpoints = document.get("endpoints", {})
            healthy = sum(1 for e in endpoints.values() if e.get("healthy"))
            if watch is not None:
                watch(document)
            if healthy >= count:
                break
            time.sleep(1.0)
        return healthy, time.monotonic() - start

    def wait_serving(self, wanted: dict[str, str], budget_s: float) -> tuple[int, float]:
        """Wait until every endpoint of `wanted` serves its version healthily, polling
        /-/endpoints every CONVERGE_POLL_S: (how many do, seconds)."""
        start = time.monotonic()
        done = 0
        while time.monotonic() - start < budget_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"modelci serve exited; see {self.log.name}")
            try:
                endpoints = self.endpoints().get("endpoints", {})
            except OSError:
                endpoints = {}
            done = sum(
                1
                for name, version in wanted.items()
                if endpoints.get(name, {}).get("healthy")
                and endpoints[name].get("version") == version
            )
            if done == len(wanted):
                break
            time.sleep(CONVERGE_POLL_S)
        return done, time.monotonic() - start

    def server_pids(self) -> set[int]:
        return {int(p["pid"]) for p in self.endpoints().get("processes", [])}

    def stop(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "modelci", "-C", str(REPO), "serve", "--stop"],
            env=self.env,
            capture_output=True,
            timeout=120,
        )
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self.log.close()


def post(url: str, body: bytes) -> tuple[int, float]:
    start = time.perf_counter()
    status, _ = http(url, body, timeout=60)
    return status, time.perf_counter() - start


def row_body() -> bytes:
    line = (ROOT / "examples/data/churn/test.csv").read_text().splitlines()[1]
    return json.dumps([[float(value) for value in line.split(",")[1:-1]]]).encode()


def lua_script(path: Path, body: bytes) -> Path:
    path.write_text(
        f"wrk.method = \"POST\"\nwrk.body = '{body.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- the two modes ---------------------------------------------------------------------------


def per_process(env: dict[str, str], names: list[str]) -> dict[str, float]:
    settings("process")
    point(names)
    host = Host(env)
    try:
        healthy, seconds = host.wait_healthy(2 * len(names), STEP_TIMEOUT_S)
        pss, rss = tree_memory(host.process.pid)
        servers = host.server_pids()
        server_pss = sum(memory(pid)[0] for pid in servers)
        server_rss = sum(memory(pid)[1] for pid in servers)
    finally:
        host.stop()
    print(f"per-process: {healthy} versions healthy in {seconds:.0f} s")
    return {
        "versions": healthy,
        "pss": pss,
        "rss": rss,
        "host_pss": pss - server_pss,
        "per_version_pss": server_pss / max(healthy, 1),
        "per_version_rss": server_rss / max(healthy, 1),
    }


def shared(env: dict[str, str], names: list[str], budget_s: float) -> dict[str, Any]:
    settings("shared")
    point(names)
    host = Host(env)
    first: dict[str, float] = {}

    def watch(document: dict[str, Any]) -> None:
        for process in document.get("processes", []):
            if process["isolation"] == "shared" and process.get("loaded") and not first:
                first["pss"] = float(process.get("pss_bytes") or 0)
                first["versions"] = len(process["loaded"])

    figures: dict[str, Any] = {}
    try:
        healthy, seconds = host.wait_healthy(2 * len(names), budget_s, watch)
        print(f"shared: {healthy} of {2 * len(names)} versions healthy in {seconds:.0f} s")
        document = host.endpoints()
        endpoints = {n: e for n, e in document["endpoints"].items() if e.get("healthy")}
        body = row_body()
        for name in endpoints:  # every version loaded
            post(f"{host.url}/endpoints/{name}/invocations", body)
        loaded_pss, loaded_rss = tree_memory(host.process.pid)
        processes = host.endpoints()["processes"]
        shared_processes = [p for p in processes if p["isolation"] == "shared"]
        loaded_count = sum(len(p["loaded"]) for p in shared_processes)
        shared_pss = sum(memory(int(p["pid"]))[0] for p in shared_processes)
        own_pss = sum(memory(int(p["pid"]))[0] for p in processes if p["isolation"] != "shared")
        figures.update(
            versions=healthy,
            seconds=seconds,
            loaded_pss=loaded_pss,
            loaded_rss=loaded_rss,
            loaded_count=loaded_count,
            shared_pss=shared_pss,
            host_pss=loaded_pss - shared_pss - own_pss,
            own_pss=own_pss,
            first=first,
            processes=len(processes),
        )

        def all_unloaded() -> bool:
            return all(
                not p["loaded"] for p in host.endpoints()["processes"] if p["isolation"] == "shared"
            )

        deadline = time.monotonic() + IDLE_UNLOAD_S * 4
        while not all_unloaded() and time.monotonic() < deadline:
            time.sleep(1.0)
        figures["idle_pss"], figures["idle_rss"] = tree_memory(host.process.pid)

        sample = [n for n in endpoints if not n.startswith("m0000")][:LATENCY_SAMPLES]
        cold, warm = [], []
        for name in sample:
            url = f"{host.url}/endpoints/{name}/invocations"
            status, first_s = post(url, body)
            status_again, again_s = post(url, body)
            if status == status_again == 200:
                cold.append(first_s)
                warm.append(again_s)
        figures["cold"], figures["warm"] = cold, warm

        script = lua_script(WORK / "row.lua", body)
        rps = {}
        for label, name in (("own process", "m0000-staging"), ("shared", "m0001-staging")):
            post(f"{host.url}/endpoints/{name}/invocations", body)  # loaded
            output = run_wrk(f"{host.url}/endpoints/{name}", script, 8, WRK_SECONDS)
            rps[label] = parse_wrk(output)[0]
        figures["rps"] = rps
        figures["converge"] = converge(env, host, sorted(endpoints), body)
    finally:
        host.stop()
    return figures


def converge(env: dict[str, str], host: Host, healthy: list[str], body: bytes) -> dict[str, Any]:
    """Pointer changes followed by the running host: CONVERGE_SINGLES single changes (production
    pointers, one at a time), then CONVERGE_CHANGES staging pointers moved at once; the time
    until the host serves each new version healthily, from the first compare-and-set."""
    models = [  # production's endpoint is the model's name, staging's has "-staging"
        n.removesuffix("-staging")
        for n in healthy
        if n.endswith("-staging") and n.removesuffix("-staging") in healthy
    ]
    models = [m for m in models if m != "m0000"]  # m0000 is in a process of its own
    singles = models[:CONVERGE_SINGLES]
    batch = models[CONVERGE_SINGLES : CONVERGE_SINGLES + CONVERGE_CHANGES]
    new = add_versions(env, singles + batch)
    single_s = []
    for name in singles:
        start = time.monotonic()
        move({name: new[name]}, "production")
        done, _ = host.wait_serving({name: new[name]}, CONVERGE_BUDGET_S)
        if done == 1:
            single_s.append(time.monotonic() - start)
    print(f"converge: {len(single_s)} of {len(singles)} single pointer changes followed")
    start = time.monotonic()
    move({name: new[name] for name in batch}, "staging")
    moved_s = time.monotonic() - start
    wanted = {f"{name}-staging": new[name] for name in batch}
    done, _ = host.wait_serving(wanted, CONVERGE_BUDGET_S)
    batch_s = time.monotonic() - start
    answered = sum(
        1 for name in wanted if post(f"{host.url}/endpoints/{name}/invocations", body)[0] == 200
    )
    print(
        f"converge: {len(batch)} pointers moved in {moved_s:.2f} s; {done} serving their new"
        f" version after {batch_s:.1f} s; {answered} answered a request after"
    )
    return {
        "singles": single_s,
        "changes": len(batch),
        "moved_s": moved_s,
        "converged": done,
        "batch_s": batch_s,
        "answered": answered,
    }


def report(process: dict[str, float], figures: dict[str, Any]) -> None:
    print()
    print("== memory (PSS summed over the supervisor, the host and its version servers) ==")
    projected_process = process["host_pss"] + TARGET_VERSIONS * process["per_version_pss"]
    print(
        f"per-process, measured: {process['versions']:.0f} versions, {process['pss'] / MIB:.0f}"
        f" MiB PSS ({process['rss'] / MIB:.0f} MiB RSS); per version"
        f" {process['per_version_pss'] / MIB:.1f} MiB PSS, {process['per_version_rss'] / MIB:.1f}"
        " MiB RSS"
    )
    print(f"per-process, projected to {TARGET_VERSIONS}: {projected_process / 2**30:.1f} GiB PSS")
    versions = int(figures["versions"])
    print(
        f"shared, measured: {versions} versions in {figures['processes']} processes, all loaded:"
        f" {figures['loaded_pss'] / MIB:.0f} MiB PSS ({figures['loaded_rss'] / MIB:.0f} MiB RSS);"
        f" after idle unload: {figures['idle_pss'] / MIB:.0f} MiB PSS"
        f" ({figures['idle_rss'] / MIB:.0f} MiB RSS)"
    )
    print(
        f"shared: memory per idle endpoint (PSS after idle unload / {versions} endpoints):"
        f" {figures['idle_pss'] / max(versions, 1) / MIB:.2f} MiB"
    )
    first = figures["first"]
    shared_versions = max(int(figures["loaded_count"]), 1)
    if first and shared_versions > 1:
        marginal = (figures["shared_pss"] - first["pss"]) / (
            shared_versions - first["versions"] or 1
        )
    else:
        marginal = figures["shared_pss"] / shared_versions
    projected_shared = figures["loaded_pss"] + max(0, TARGET_VERSIONS - versions) * marginal
    print(
        f"shared: the shared process {figures['shared_pss'] / MIB:.0f} MiB PSS for"
        f" {shared_versions} loaded versions, {marginal / MIB:.2f} MiB per further version"
    )
    print(
        f"shared, {'measured' if versions >= TARGET_VERSIONS else 'projected'} at"
        f" {TARGET_VERSIONS}: {projected_shared / 2**30:.2f} GiB PSS, all loaded"
        f" (per-process: {projected_process / 2**30:.1f} GiB,"
        f" {projected_process / max(projected_shared, 1):.0f}x more)"
    )
    fits = projected_shared < MACHINE_GIB * 2**30
    print(f"{verdict(fits)}  200 x 2 versions on one {MACHINE_GIB:.0f} GiB machine")
    print()
    cold, warm = figures["cold"], figures["warm"]
    if cold:
        print(
            f"first request after idle unload ({len(cold)} versions): median"
            f" {statistics.median(cold) * 1000:.0f} ms, max {max(cold) * 1000:.0f} ms;"
            f" the request after it: median {statistics.median(warm) * 1000:.1f} ms"
        )
        print(f"{verdict(max(cold) <= LATENCY_TARGET_S)}  first request after unload <= 1 s")
    else:
        print("FAIL  no version answered after its unload")
    rps = figures["rps"]
    ratio = rps["shared"] / rps["own process"] if rps.get("own process") else float("nan")
    print()
    print(
        f"throughput through the host (wrk, 8 connections, {WRK_SECONDS} s): own process"
        f" {rps['own process']:.0f} req/s, shared process {rps['shared']:.0f} req/s,"
        f" ratio {ratio:.2f}"
    )
    print(f"{verdict(ratio >= THROUGHPUT_TARGET)}  shared vs own process >= {THROUGHPUT_TARGET}")
    print()
    result = figures["converge"]
    singles = result["singles"]
    changes, converged = result["changes"], result["converged"]
    if singles:
        print(
            f"one pointer change, time to converge (median of {len(singles)}):"
            f" {statistics.median(singles):.1f} s (each: "
            + ", ".join(f"{s:.1f}" for s in singles)
            + " s)"
        )
    else:
        print("one pointer change: never converged")
    print(
        f"{changes} pointer changes at once (compare-and-set in {result['moved_s']:.2f} s),"
        f" time to converge: {result['batch_s']:.1f} s; {converged} of {changes} serving"
        f" their new version, {result['answered']} answered a request"
    )
    ok = converged == changes > 0 and result["batch_s"] <= CONVERGE_TARGET_S
    print(f"{verdict(ok)}  {changes} pointer changes converge <= {CONVERGE_TARGET_S:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--per-process", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=300.0)
    args = parser.parse_args()
    env = environment()
    start = time.monotonic()
    names = make_repository(env, args.models)
    took = time.monotonic() - start
    print(f"repository: churn trained, {args.models} copies registered in {took:.0f} s")
    process = per_process(env, names[: args.per_process])
    figures = shared(env, names, args.budget_s)
    report(process, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
