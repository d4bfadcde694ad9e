"""Merge-to-serving latency through a separate host, against the `local` backend, in one run.

Two copies of the tests' stdlib toy model repository:
- `local`: the embedded defaults; `run` deploys through the endpoint host it starts beside the
  repository;
- `host`: a shared SQLite registry and folder store, `MODELCI_DEPLOY_BACKEND=host`, and one
  `modelci serve --registry ... --store ...` started beforehand in a folder that is no
  checkout; `run` moves the pointer and waits for the host's report.

Each round commits a new bias to both and measures, for each, from the start of `modelci run`
to the first answer of the new version at its endpoint (its /metadata), and `run`'s own time.
A first round builds the environments and is not counted. Target: the host's median
merge-to-serving latency is within the host's poll period (2 s) plus 1 s of the local one's.

Run: `.venv/bin/python bench/team_bench.py [--rounds 5]` from the repository root. Exits 0 (the
table says PASS or FAIL).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "team-bench"
STEP_TIMEOUT_S = 600.0

sys.path.insert(0, str(ROOT))
from modelci.serve.host import POLL_S  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.toy import INFERENCE, SERVED_SPEC, toy_rows, train_script  # noqa: E402

TARGET_EXTRA_S = POLL_S + 1.0


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCI_", "GIT_"))}
    env.update(
        {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
            "NO_COLOR": "1",
            "MODELCI_ALLOW_LOCAL": "1",  # both are local to this machine, on purpose
            **extra,
        }
    )
    return env


def call(env: dict[str, str], cwd: Path, *command: str) -> str:
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def make_repository(repo: Path, env: dict[str, str], envs: Path) -> None:
    (repo / "models/toy").mkdir(parents=True)
    (repo / "data/toy").mkdir(parents=True)
    (repo / ".gitignore").write_text(".modelci/\n")
    (repo / "models/toy/train.py").write_text(train_script())
    (repo / "models/toy/inference.py").write_text(INFERENCE)
    (repo / "models/toy/requirements.txt").write_text("")
    for name in ("train", "test"):
        (repo / f"data/toy/{name}.csv").write_text(toy_rows(20))
    (repo / ".modelci").mkdir()
    (repo / ".modelci/envs").symlink_to(envs, target_is_directory=True)
    call(env, repo, "git", "init", "-q", "-b", "main")


def metadata_version(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/endpoints/toy-staging/metadata", timeout=5) as answer:
            return str(json.loads(answer.read())["version"])
    except (OSError, ValueError, KeyError):
        return None


def local_url(repo: Path) -> str | None:
    try:
        return str(json.loads((repo / ".modelci/serve/serve.json").read_text())["url"])
    except (OSError, ValueError, KeyError):
        return None


def merge(repo: Path, env: dict[str, str], bias: float, url: str | None) -> tuple[float, float]:
    """Commit a new bias, then `run`; (start of run -> new version answers, run's own time)."""
    (repo / "models/toy/model.toml").write_text(SERVED_SPEC.format(bias=bias))
    call(env, repo, "git", "add", "-A")
    call(env, repo, "git", "commit", "-q", "-m", f"bias {bias}")
    sha = call(env, repo, "git", "rev-parse", "HEAD").strip()
    version = f"toy-{sha[:12]}"
    started = time.perf_counter()
    call(env, repo, sys.executable, "-m", "modelci", "run", "--json")
    ran = time.perf_counter() - started
    where = url or local_url(repo)
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while where is None or metadata_version(where) != version:
        if time.monotonic() > deadline:
            sys.exit(f"{version} never answered at {where}")
        time.sleep(0.01)
        where = url or local_url(repo)
    return time.perf_counter() - started, ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    envs, shared, host_dir = WORK / "envs", WORK / "shared", WORK / "host"
    for folder in (envs, shared, host_dir / ".modelci"):
        folder.mkdir(parents=True)
    (host_dir / ".modelci/envs").symlink_to(envs, target_is_directory=True)
    registry, store = f"sqlite:///{shared / 'registry.db'}", str(shared / "store")
    local_env = environ(MODELCI_SERVE_PORT=str(free_port()))
    team_env = environ(
        MODELCI_REGISTRY_URL=registry, MODELCI_STORE_URL=store, MODELCI_DEPLOY_BACKEND="host"
    )
    repos = {"local": WORK / "local", "host": WORK / "team"}
    make_repository(repos["local"], local_env, envs)
    make_repository(repos["host"], team_env, envs)

    port = free_port()
    host_url = f"http://127.0.0.1:{port}"
    with (host_dir / "host.log").open("ab") as log:
        host = subprocess.Popen(
            [
                *(sys.executable, "-m", "modelci", "serve", "--registry", registry),
                *("--store", store, "--port", str(port), "--name", "bench-host"),
            ],
            cwd=host_dir,
            env=environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    timings: dict[str, list[tuple[float, float]]] = {"local": [], "host": []}
    try:
        for round_ in range(args.rounds + 1):
            bias = 0.5 + round_
            for name, env in (("local", local_env), ("host", team_env)):
                url = host_url if name == "host" else None
                took = merge(repos[name], env, bias, url)
                if round_ > 0:  # the first round builds the environments
                    timings[name].append(took)
                print(f"round {round_} {name}: serving after {took[0]:.2f} s (run {took[1]:.2f} s)")
    finally:
        os.killpg(host.pid, signal.SIGTERM)
        host.wait(timeout=60)
        subprocess.run(
            [sys.executable, "-m", "modelci", "-C", str(repos["local"]), "serve", "--stop"],
            env=local_env,
            capture_output=True,
            check=False,
        )

    local = statistics.median(t[0] for t in timings["local"])
    team = statistics.median(t[0] for t in timings["host"])
    print()
    print(f"{'backend':<8} {'merge->serving median':>22} {'run median':>11}")
    for name in ("local", "host"):
        serving = statistics.median(t[0] for t in timings[name])
        ran = statistics.median(t[1] for t in timings[name])
        print(f"{name:<8} {serving:>20.2f} s {ran:>9.2f} s")
    verdict = "PASS" if team <= local + TARGET_EXTRA_S else "FAIL"
    print(
        f"\nhost / local: {team / local:.2f}x (+{team - local:.2f} s); target: at most "
        f"+{TARGET_EXTRA_S:g} s (the host's {POLL_S:g} s poll + 1 s): {verdict}"
    )


if __name__ == "__main__":
    main()
