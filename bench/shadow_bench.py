"""Shadow traffic at 100 % against plain serving, through the endpoint host, in one run.

    .venv/bin/python bench/shadow_bench.py [--duration 10] [--warmup 3] [--connections 16]

On the tests' standard-library toy model at bench/.work/shadow-bench (its server starts in a
blink), two versions are trained (the second answers the same from another commit) and the
first deployed to staging, which starts the host on a free loopback port. wrk (Debian's `wrk`,
one thread, keep-alive, 127.0.0.1) posts one row per request to the host's gateway, after a
warm-up, each run bounded by `--duration` seconds and `--cap` requests (the script stops
itself at the cap), in `--rounds` alternated rounds (means reported: the machine's other
load weighs on both):

- plain: the endpoint alone: requests/s and p99, the baseline;
- shadow: `modelci deploy toy --env staging --shadow --percent 100 --version <second>`, the
  same load, then `--shadow --stop`: every request is also sent to the candidate's server,
  its answer recorded with the live one off the request path, and dropped (counted) past the
  host's limit of mirrored requests in flight.

Targets: shadow throughput >= 0.5x plain (every request costs the machine two predictions
on the same cores), shadow p99 <= 2x plain, no failed live request in either run, and every
mirrored request accounted for: pairs read back by `modelci shadow` plus the drops the host
announced equal the requests sent while the shadow ran (wrk does not count those in flight
when it stops: up to one per connection and run more are allowed). Everything started is
stopped at the end (`serve --stop`). Exits 0 whatever the figures.
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

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "shadow-bench"
REPO = WORK / "repo"
sys.path.insert(0, str(ROOT))
from tests.support.ports import free_port  # noqa: E402
from tests.support.toy import INFERENCE, SERVED_SPEC, toy_rows, train_script  # noqa: E402

STEP_TIMEOUT_S = 300.0
RECORD_WAIT_S = 60.0  # how long the pairs may take to be written after the load
THROUGHPUT_TARGET = 0.5
P99_TARGET = 2.0


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


def modelci(env: dict[str, str], *args: str, check: bool = True) -> Any:
    return json.loads(run(env, [sys.executable, "-m", "modelci", "-C", str(REPO), *args], check))


def commit_and_train(env: dict[str, str], inference: str, message: str) -> str:
    (REPO / "models/toy/inference.py").write_text(inference)
    run(env, ["git", "add", "-A"])
    run(env, ["git", "commit", "-q", "-m", message])
    trained = modelci(env, "train", "toy", "--json")
    return str(trained["versions"][0]["version"])


def make_repository(env: dict[str, str]) -> tuple[str, str]:
    """The toy model, committed and trained; a second version answering the same."""
    shutil.rmtree(WORK, ignore_errors=True)
    (REPO / "models/toy").mkdir(parents=True)
    (REPO / "data/toy").mkdir(parents=True)
    (REPO / ".gitignore").write_text(".modelci/\n")
    (REPO / "models/toy/model.toml").write_text(SERVED_SPEC.format(bias=0.5))
    (REPO / "models/toy/train.py").write_text(train_script())
    (REPO / "models/toy/requirements.txt").write_text("")
    for name in ("train", "test"):
        (REPO / f"data/toy/{name}.csv").write_text(toy_rows(20))
    run(env, ["git", "init", "-q", "-b", "main"])
    live = commit_and_train(env, INFERENCE, "toy model")
    candidate = commit_and_train(env, INFERENCE + "\n# the same answers\n", "candidate")
    return live, candidate


def wrk_script(cap: int) -> Path:
    """POST one row per request; the thread stops itself after `cap` answers."""
    path = WORK / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        "wrk.body = '[[1, 2]]'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "local answered = 0\n"
        "function response(status, headers, body)\n"
        "  answered = answered + 1\n"
        f"  if answered >= {cap} then wrk.thread:stop() end\n"
        "end\n"
    )
    return path


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    found = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, flags=re.MULTILINE)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    requests = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors:.*", output)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "rps": float(rps.group(1)) if rps else 0.0,
        "p99_ms": float(found.group(1)) * scale[found.group(2)] if found else float("nan"),
        "failed": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sockets.group(0) if sockets else "",
    }


def load(url: str, args: argparse.Namespace, name: str) -> tuple[dict[str, Any], int]:
    """A warm-up then the measured run; the measured figures, and every request sent."""
    script = wrk_script(args.cap)
    warm = wrk(url, script, args.connections, args.warmup) if args.warmup > 0 else {"requests": 0}
    figures = wrk(url, script, args.connections, args.duration)
    print(
        f"-- {name}: {figures['requests']:,} requests, {figures['rps']:,.0f} req/s, "
        f"p99 {figures['p99_ms']:.2f} ms, failed {figures['failed']} {figures['socket_errors']}",
        flush=True,
    )
    return figures, int(warm["requests"]) + int(figures["requests"])


def verdict(held: bool) -> str:
    return "PASS" if held else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cap", type=int, default=200_000, help="requests per wrk run, at most")
    parser.add_argument("--rounds", type=int, default=2, help="plain and shadow runs, alternated")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (Debian: apt-get install wrk)")
    env = environment()
    try:
        started = time.perf_counter()
        live, candidate = make_repository(env)
        outcome = modelci(
            env, "deploy", "toy", "--env", "staging", "--version", live, "--skip-tests", "--json"
        )
        url = f"{outcome['gateway_url']}/invocations"
        print(f"-- setup {time.perf_counter() - started:.1f} s: {live} live at {url}", flush=True)
        plains, shadows, accounted = [], [], []
        for round_ in range(1, args.rounds + 1):  # alternated: a busy machine weighs on both
            plains.append(load(url, args, f"round {round_} plain")[0])
            shadowed, sent = shadow_round(env, url, candidate, args, round_)
            shadows.append(shadowed)
            accounted.append(sent)
    finally:
        subprocess.run(
            [sys.executable, "-m", "modelci", "-C", str(REPO), "serve", "--stop"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    summary(plains, shadows, accounted, args)


def shadow_round(
    env: dict[str, str], url: str, candidate: str, args: argparse.Namespace, round_: int
) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """Start a shadow at 100 %, load, wait for its pairs, end it; the figures, and the
    requests sent, pairs recorded and drops announced."""
    shadow = modelci(
        env,
        *("deploy", "toy", "--env", "staging", "--shadow", "--percent", "100"),
        *("--version", candidate, "--json"),
    )
    shadowed, sent = load(url, args, f"round {round_} shadow 100%")
    deadline = time.monotonic() + RECORD_WAIT_S
    while True:  # the pairs are written in batches, off the request path
        report = modelci(
            *(env, "shadow", "toy", "--env", "staging", "--json"),
            *("--session", str(shadow["event"]), "--limit", str(sent + 1)),
        )
        pairs, dropped = int(report["pairs"]), int(report["dropped"])
        if pairs + dropped >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    modelci(env, "deploy", "toy", "--env", "staging", "--shadow", "--stop", "--json")
    latency = report["latency_ms"]
    print(
        f"   shadow {shadow['event']}: {pairs:,} pairs, {dropped:,} dropped, of {sent:,} "
        f"requests sent; disagreement {report['disagreement']}, p50 server to server: live "
        f"{latency['live']['p50']:.2f} ms, candidate {latency['candidate']['p50']:.2f} ms",
        flush=True,
    )
    return shadowed, (sent, pairs, dropped)


def summary(
    plains: list[dict[str, Any]],
    shadows: list[dict[str, Any]],
    accounted: list[tuple[int, int, int]],
    args: argparse.Namespace,
) -> None:
    plain = {k: statistics.mean(r[k] for r in plains) for k in ("rps", "p99_ms")}
    shadowed = {k: statistics.mean(r[k] for r in shadows) for k in ("rps", "p99_ms")}
    plain["failed"], shadowed["failed"] = (sum(r["failed"] for r in rs) for rs in (plains, shadows))
    plain["socket_errors"] = "".join(r["socket_errors"] for r in plains)
    shadowed["socket_errors"] = "".join(r["socket_errors"] for r in shadows)
    sent = sum(a[0] for a in accounted)
    pairs = sum(a[1] for a in accounted)
    dropped = sum(a[2] for a in accounted)
    throughput = shadowed["rps"] / plain["rps"] if plain["rps"] else 0.0
    p99 = shadowed["p99_ms"] / plain["p99_ms"] if plain["p99_ms"] else float("inf")
    failed = plain["failed"] + shadowed["failed"]
    # wrk counts no request still in flight when it stops: one per connection and run at most
    slack = 2 * args.connections * args.rounds
    sockets = bool(plain["socket_errors"] or shadowed["socket_errors"])
    print()
    print(f"means over {args.rounds} alternated rounds")
    print(f"{'figure':<44}{'value':>16}  target")
    rows = [
        ("plain requests/s", f"{plain['rps']:,.0f}", "baseline", None),
        ("shadow 100% requests/s", f"{shadowed['rps']:,.0f}", "", None),
        (
            "throughput shadow / plain",
            f"{throughput:.2f}x",
            f">= {THROUGHPUT_TARGET}x",
            throughput >= THROUGHPUT_TARGET,
        ),
        ("plain p99 (ms)", f"{plain['p99_ms']:.2f}", "baseline", None),
        ("shadow 100% p99 (ms)", f"{shadowed['p99_ms']:.2f}", "", None),
        ("p99 shadow / plain", f"{p99:.2f}x", f"<= {P99_TARGET}x", p99 <= P99_TARGET),
        ("failed live requests", str(failed), "0", failed == 0 and not sockets),
        (
            "mirrored requests recorded + dropped",
            f"{pairs + dropped:,}/{sent:,}",
            "all",
            sent <= pairs + dropped <= sent + slack,
        ),
        ("dropped under pressure", f"{dropped:,}", "counted", None),
    ]
    for name, value, target, held in rows:
        mark = "" if held is None else verdict(held)
        print(f"{name:<44}{value:>16}  {target} {mark}".rstrip())


if __name__ == "__main__":
    main()
