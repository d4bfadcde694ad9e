"""Benchmark the Ray backends on a real two-node Ray cluster started on this machine.

    .venv/bin/python bench/ray_bench.py [--updates 5] [--job-seconds 10]

Starts a head and a worker node (one CPU each, 127.0.0.1 only, as tests/support/ray_cluster.py
starts them) and, in a fresh git repository at bench/.work/ray-bench, a toy model that needs
only the standard library:

(a) model updates on Ray Serve under load: two versions are trained on Ray and deployed to
    staging; then, while 8 connections post requests to the endpoint without pause, the
    endpoint is deployed `--updates` times alternating between the versions. Reported: the
    requests answered, the failed ones (target 0), each update's time, requests/s.
(b) training overhead: a job whose script sleeps `--job-seconds` trains once on the local
    backend and once on Ray (`--force`, same commit); reported: both wall times (of `modelci
    train`, environment cached) and their ratio Ray / local.

The cluster is stopped at the end (its own process groups only). Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.ray_cluster import RayCluster, ray_cluster  # noqa: E402
from tests.support.toy import INFERENCE  # noqa: E402

WORK = ROOT / "bench" / ".work" / "ray-bench"
CONNECTIONS = 8
ROW = b"[[1, 2]]"
TRAIN = """\
import json, os, time
time.sleep(float(os.environ["SM_HP_SLEEP"]))
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"bias": float(os.environ["SM_HP_BIAS"])}, f)
print("score=0.75")
"""
SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = {{ bias = {bias}, sleep = {sleep} }}
resources = {{ num_cpus = 0.5 }}

[serve]
handler = "inference.py"
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def modelci(repo: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run `modelci --json ARGS` in the repository; its JSON document."""
    done = subprocess.run(
        [sys.executable, "-m", "modelci", "-C", str(repo), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"modelci {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def commit_model(repo: Path, *, bias: float, sleep: float, message: str) -> None:
    (repo / "models/toy/model.toml").write_text(SPEC.format(bias=bias, sleep=sleep))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def make_repo(backend: str) -> Path:
    repo = WORK / "repo"
    shutil.rmtree(WORK, ignore_errors=True)
    (repo / "models/toy").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "user.email", "bench@example.com")
    (repo / ".gitignore").write_text(".modelci/\n")
    (repo / "modelci.toml").write_text(
        f'[train]\nbackend = "{backend}"\n\n[deploy]\nbackend = "ray"\n'
    )
    (repo / "models/toy/train.py").write_text(TRAIN)
    (repo / "models/toy/inference.py").write_text(INFERENCE)
    (repo / "models/toy/requirements.txt").write_text("")
    return repo


class Load:
    """CONNECTIONS threads posting without pause; answers and failures counted."""

    def __init__(self, url: str):
        import httpx

        self.httpx = httpx
        self.url = url
        self.stop = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.client, daemon=True) for _ in range(CONNECTIONS)
        ]

    def client(self) -> None:
        with self.httpx.Client(timeout=120) as client:
            while not self.stop.is_set():
                try:
                    answer = client.post(
                        self.url, content=ROW, headers={"content-type": "application/json"}
                    )
                    failure = (
                        None
                        if answer.status_code == 200
                        else f"{answer.status_code} {answer.text[:120]}"
                    )
                except self.httpx.HTTPError as error:
                    failure = repr(error)
                with self.lock:
                    if failure is None:
                        self.ok += 1
                    else:
                        self.failed.append(failure)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def updates_under_load(cluster: RayCluster, env: dict[str, str], count: int) -> None:
    repo = make_repo("ray")
    commit_model(repo, bias=0.5, sleep=0, message="v1")
    first = modelci(repo, env, "train", "toy")["versions"][0]["version"]
    commit_model(repo, bias=1.5, sleep=0, message="v2")
    second = modelci(repo, env, "train", "toy")["versions"][0]["version"]
    started = time.monotonic()
    modelci(repo, env, "deploy", "toy", "--env", "staging", "--skip-tests", "--version", first)
    print(f"(a) first deploy (starts Serve): {time.monotonic() - started:.1f} s")
    load = Load(f"{cluster.serve_url}/endpoints/toy-staging/invocations")
    load.start()
    began = time.monotonic()
    times = []
    for index in range(count):
        version = second if index % 2 == 0 else first
        kind = ["deploy", "toy", "--env", "staging", "--skip-tests", "--version", version]
        if index % 2 == 1:
            kind = ["rollback", "toy", "--env", "staging", "--to", version]
        started = time.monotonic()
        outcome = modelci(repo, env, *kind)
        times.append(time.monotonic() - started)
        print(
            f"    update {index + 1}: {outcome['status']} {version} in {times[-1]:.1f} s",
            flush=True,
        )
    load.finish()
    elapsed = time.monotonic() - began
    print(
        f"(a) {count} updates under {CONNECTIONS} connections: {load.ok} requests answered, "
        f"{len(load.failed)} failed (target 0), {load.ok / elapsed:.0f} requests/s, "
        f"update {min(times):.1f}-{max(times):.1f} s (mean {sum(times) / len(times):.1f} s)"
    )
    for failure in load.failed[:5]:
        print(f"    failed: {failure}")


def training_overhead(env: dict[str, str], seconds: float) -> None:
    repo = make_repo("local")
    commit_model(repo, bias=0.5, sleep=seconds, message="sleeper")
    modelci(repo, env, "build", "toy")  # the environment is built once, outside the timing
    started = time.monotonic()
    modelci(repo, env, "train", "toy", "--force")
    local = time.monotonic() - started
    ray_env = env | {"MODELCI_TRAIN_BACKEND": "ray"}
    modelci(repo, ray_env, "train", "toy", "--force")  # warm: modelci's runtime uploaded once
    started = time.monotonic()
    modelci(repo, ray_env, "train", "toy", "--force")
    on_ray = time.monotonic() - started
    print(
        f"(b) a {seconds:g}-second job: local {local:.1f} s, Ray {on_ray:.1f} s, "
        f"ratio Ray/local {on_ray / local:.2f}x (overhead {on_ray - local:+.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--job-seconds", type=float, default=10.0)
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCI_", "GIT_"))}
    started = time.monotonic()
    with ray_cluster() as cluster:
        print(
            f"cluster of 2 nodes up in {time.monotonic() - started:.1f} s at "
            f"{cluster.address} (dashboard {cluster.dashboard_url})",
            flush=True,
        )
        env |= cluster.environ()
        updates_under_load(cluster, env, options.updates)
        training_overhead(env, options.job_seconds)
    print(f"cluster stopped; {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
