"""How fast a canary's alarm takes a failing version out of service, against the rollback a
script could do with no canary, measured in one run.

On a toy model's repository at bench/.work/rollout-bench (the tests' standard-library model),
version A (bias 0.5) is trained and deployed to staging (starting the local endpoint host on a
free loopback port), and version B, whose handler fails one request in three, is trained.
CLIENTS client threads (httpx, keep-alive, 127.0.0.1) post one row per request through the
host for the whole run; every answer is kept with its time and status.

- canary: `[deploy.rollout] strategy = "canary"`, CANARY_PERCENT %, a bake of BAKE_S s,
  `max_error_rate = 0.1`, `min_requests = 10`. `modelci deploy` of B: from the first failed
  answer to the last answer B gave (after it, every request goes to A): the time to full
  rollback (target <= 5 s, and below the bake: the alarm, not the bake's end, ended it), and
  the share of requests failed during the deploy (target < CANARY_PERCENT % x 1/3).
- baseline, same run: `all_at_once`. B's smoke request passes (its first call), so the health
  check deploys it and all traffic goes to it; a watcher runs `modelci rollback` the moment it
  sees the first failed answer (the fastest a script outside the deploy could react). From that
  first failure to B's last answer, and the requests failed meanwhile. The canary's figures are
  reported as ratios to these, and against the bake interval.

With `--backend ray` the same runs on Ray Serve (`[deploy] backend = "ray"`): a two-node Ray
cluster on this machine (tests/support/ray_cluster.py, one CPU per node, 127.0.0.1 only), the
clients posting through Serve's proxy. The canary runs as its own Serve application whose
share the serving replicas route to it (modelci.deploy.ray_rollout); the baseline's deploy and
rollback are Serve's rolling updates of the endpoint's application.

Run: `.venv/bin/python bench/rollout_bench.py [--backend ray]` from the repository root (after
scripts/setup). Loopback only; everything started is stopped at the end (`serve --stop`, then
any process left that names the bench's repository is killed; the Ray cluster's own process
groups). Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "rollout-bench"
REPO = WORK / "repo"
sys.path.insert(0, str(ROOT))
from tests.support.hosts import processes_of  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.ray_cluster import ray_cluster  # noqa: E402
from tests.support.rolling import (  # noqa: E402
    FAILS_ONE_IN_THREE,
    Answered,
    Recorder,
    rollout_table,
)
from tests.support.toy import INFERENCE, SERVED_SPEC, toy_rows, train_script  # noqa: E402

CLIENTS = 8
CANARY_PERCENT = 10
BAKE_S = 60.0
STEP_TIMEOUT_S = 300.0
OLD, NEW = 3.5, 4.5  # A answers 1 + 2 + 0.5, B 1 + 2 + 1.5

Row = tuple[str, str, str, str, bool]
BACKEND = ["local"]  # set from --backend: what `[deploy] backend` the repository names


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


def commit_version(env: dict[str, str], bias: float, inference: str) -> str:
    (REPO / "models/toy/model.toml").write_text(SERVED_SPEC.format(bias=bias))
    (REPO / "models/toy/inference.py").write_text(inference)
    run(env, ["git", "add", "-A"])
    run(env, ["git", "commit", "-q", "-m", f"toy, bias {bias}"])
    trained = json.loads(modelci(env, "train", "toy", "--json"))
    return str(trained["versions"][0]["version"])


def make_repository(env: dict[str, str]) -> tuple[str, str]:
    """The toy model's versions A (healthy) and B (fails one request in three), trained."""
    shutil.rmtree(WORK, ignore_errors=True)
    (REPO / "models/toy").mkdir(parents=True)
    (REPO / "data/toy").mkdir(parents=True)
    (REPO / ".gitignore").write_text(".modelci/\n")
    (REPO / "models/toy/train.py").write_text(train_script())
    (REPO / "models/toy/requirements.txt").write_text("")
    set_strategy("all_at_once")  # the backend A is deployed to
    for name in ("train", "test"):
        (REPO / f"data/toy/{name}.csv").write_text(toy_rows(20))
    run(env, ["git", "init", "-q", "-b", "main"])
    return commit_version(env, 0.5, INFERENCE), commit_version(env, 1.5, FAILS_ONE_IN_THREE)


def set_strategy(strategy: str) -> None:
    on = f'[deploy]\nbackend = "{BACKEND[0]}"\n\n'
    (REPO / "modelci.toml").write_text(
        on
        + rollout_table(
            strategy,
            canary_percent=CANARY_PERCENT,
            bake_seconds=BAKE_S,
            max_error_rate=0.1,
            min_requests=10,
        )
    )


def deploy(env: dict[str, str], version: str, *options: str) -> dict[str, Any]:
    out = modelci(
        env, "deploy", "toy", "--env", "staging", "--version", version, "--skip-tests", "--json",
        *options, check=False,
    )  # fmt: skip
    outcome: dict[str, Any] = json.loads(out)
    return outcome


def from_new(answer: Answered) -> bool:
    """Whether B gave this answer: its prediction, or its handler's 500."""
    return answer.value == NEW or answer.status == 500


def window(answers: list[Answered]) -> tuple[float, int, int]:
    """(first failure to B's last answer in s, failed answers, answers) of one phase."""
    failed = [a for a in answers if a.status != 200]
    if not failed:
        return float("nan"), 0, len(answers)
    last = max(a.at for a in answers if from_new(a))
    return last - failed[0].at, len(failed), len(answers)


def canary(env: dict[str, str], load: Recorder, new: str) -> tuple[tuple[float, int, int], str]:
    set_strategy("canary")
    began = time.monotonic()
    outcome = deploy(env, new)
    ended = time.monotonic()
    time.sleep(1.0)  # answers in flight land
    return window(load.between(began, ended + 1.0)), str(outcome.get("status"))


def all_at_once(env: dict[str, str], load: Recorder, new: str) -> tuple[float, int, int]:
    set_strategy("all_at_once")
    began = time.monotonic()
    outcome = deploy(env, new)
    if outcome.get("status") != "deployed":
        raise RuntimeError(f"the all_at_once deploy of B: {outcome}")
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not any(a.status != 200 for a in load.between(began, time.monotonic())):
        if time.monotonic() > deadline:
            raise RuntimeError("B never failed a request")
        time.sleep(0.005)
    modelci(env, "rollback", "toy", "--env", "staging", "--json")
    ended = time.monotonic()
    time.sleep(1.0)
    return window(load.between(began, ended + 1.0))


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


@contextlib.contextmanager
def backend(env: dict[str, str]) -> Iterator[None]:
    """The Ray cluster the repository deploys to, with `--backend ray` (none for local)."""
    if BACKEND[0] != "ray":
        yield
        return
    print("-- starting a two-node Ray cluster on 127.0.0.1", flush=True)
    with ray_cluster() as cluster:
        env.update(cluster.environ())
        yield


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    BACKEND[0] = parser.parse_args().backend
    began = time.monotonic()
    env = environment()
    rows: list[Row] = []
    with backend(env):
        rows, left = measure(env)
    if left:
        rows.append(("processes left after `serve --stop`", str(len(left)), "", "0", False))
    print(f"\nbackend: {BACKEND[0]}")
    print(f"\n{'case':40} {'figure':>12}  {'against':84} {'target':12} result")
    for name, figure, against, target, ok in rows:
        print(f"{name:40} {figure:>12}  {against:84} {target:12} {'PASS' if ok else 'FAIL'}")
    print(f"\nbench took {time.monotonic() - began:.0f} s")
    return 0


def measure(env: dict[str, str]) -> tuple[list[Row], list[int]]:
    """The canary and the baseline, on the backend; the rows, and processes left over."""
    rows: list[Row] = []
    try:
        print(f"-- toy repository at {REPO}: train A and B, deploy A", flush=True)
        old, new = make_repository(env)
        gateway = deploy(env, old)["gateway_url"]
        with Recorder(f"{gateway}/invocations", threads=CLIENTS) as load:
            while load.count() < 200:
                time.sleep(0.05)
            print("-- canary deploy of B (alarm max_error_rate = 0.1)", flush=True)
            (c_s, c_failed, c_total), status = canary(env, load, new)
            print("-- baseline: all_at_once deploy of B, rollback at its first failure", flush=True)
            b_s, b_failed, b_total = all_at_once(env, load, new)
        share = c_failed / c_total if c_total else float("nan")
        bound = CANARY_PERCENT / 100 / 3
        rows += [
            ("canary deploy ended", status, "rolled_back by its alarm", "rolled_back",
             status == "rolled_back"),
            ("canary: first error -> full rollback", f"{c_s:.2f} s",
             f"bake {BAKE_S:g} s: {c_s / BAKE_S:.3f}x; all_at_once + rollback {b_s:.2f} s: "
             f"{c_s / b_s:.2f}x", "<= 5 s", c_s <= 5.0),
            ("canary: requests failed", f"{c_failed}/{c_total}",
             f"{share:.2%} of the deploy's; all_at_once + rollback: {b_failed}/{b_total}",
             f"< {bound:.2%}", share < bound),
            ("canary vs all_at_once: failed requests", f"{c_failed}", f"{b_failed}",
             "fewer", c_failed < b_failed),
        ]  # fmt: skip
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as error:
        print(f"failed: {error}", flush=True)
        rows.append(("the bench ran to its end", "no", str(error)[:56], "yes", False))
    finally:
        left = stop_everything(env)
    return rows, left


if __name__ == "__main__":
    sys.exit(main())
