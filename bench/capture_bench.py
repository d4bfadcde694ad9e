"""Benchmark data capture in the endpoint host: throughput and p99 with `[serve.capture]
percent = 20` against plain serving, in one run.

    .venv/bin/python bench/capture_bench.py [--duration 6] [--warmup 2] [--rounds 5]
                                            [--connections 16]

At bench/.work/capture-bench it commits two copies of the standard-library toy model (tests/
support/toy.py), `plain` and `captured` (the same code and data; only `captured` has
`[serve.capture] percent = 20`), trains both and deploys both to staging, which starts one
endpoint host serving both. wrk (Debian's `wrk`) then posts one JSON row per request through
the host (`/endpoints/<endpoint>/invocations`) to each endpoint in turn, `--rounds` times
(plain, captured, plain, ...), each after a warm-up, so that both see the same machine. Reported:
requests/s and p99 per round, the medians, the median of the rounds' ratios captured/plain
(target: at most 10 % throughput lost, ratio >= 0.90), and what the host captured, dropped
and wrote, with the share of requests captured (expected near 20 %). Everything started is
stopped at the end. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import free_port, http, parse_wrk, run_wrk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.toy import INFERENCE, toy_rows, train_script  # noqa: E402

WORK = ROOT / "bench" / ".work" / "capture-bench"
REPO = WORK / "repo"
STEP_TIMEOUT_S = 900.0
TARGET_RATIO = 0.90
PERCENT = 20
SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = {{ bias = 0.5 }}
channels = {{ train = "data/toy/train.csv", test = "data/toy/test.csv" }}

[serve]
handler = "inference.py"
{capture}
"""
MODELS = {"plain": "", "captured": f"capture = {{ percent = {PERCENT} }}"}


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELCI_", "GIT_"))}
    env.update(
        {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
            "MODELCI_SERVE_PORT": str(free_port()),
            "NO_COLOR": "1",
        }
    )
    return env


def run(command: list[str], env: dict[str, str], check: bool = True) -> str:
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
    return run([sys.executable, "-m", "modelci", "-C", str(REPO), *args], env, check)


def make_repository(env: dict[str, str]) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    (REPO / "data" / "toy").mkdir(parents=True)
    (REPO / ".gitignore").write_text(".modelci/\n")
    (REPO / "data/toy/train.csv").write_text(toy_rows(200))
    (REPO / "data/toy/test.csv").write_text(toy_rows(20))
    for name, capture in MODELS.items():
        folder = REPO / "models" / name
        folder.mkdir(parents=True)
        (folder / "model.toml").write_text(SPEC.format(capture=capture))
        (folder / "train.py").write_text(train_script())
        (folder / "inference.py").write_text(INFERENCE)
        (folder / "requirements.txt").write_text("")
    run(["git", "init", "-q", "-b", "main"], env)
    run(["git", "add", "-A"], env)
    run(["git", "commit", "-q", "-m", "two toys"], env)


def measure(url: str, script: Path, args: argparse.Namespace) -> tuple[float, float, str]:
    if args.warmup > 0:
        run_wrk(url, script, args.connections, args.warmup)
    return parse_wrk(run_wrk(url, script, args.connections, args.duration))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run (<= 60)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="plain/captured pairs (<= 10)")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    args.duration, args.rounds = min(args.duration, 60), min(args.rounds, 10)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): nothing measured")
        return
    env = environment()
    make_repository(env)
    try:
        for name in MODELS:
            modelci(env, "train", name)
            outcome = json.loads(
                modelci(env, "deploy", name, "--env", "staging", "--skip-tests", "--json")
            )
            print(f"-- {name}: {outcome['status']} {outcome['version']}", flush=True)
        host = json.loads((REPO / ".modelci/serve/serve.json").read_text())["url"]
        script = WORK / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.body = "[[1, 2]]"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in MODELS}
        before = capture_counts(host)
        sent = 0
        for round_ in range(1, args.rounds + 1):
            for name in MODELS:
                url = f"{host}/endpoints/{name}-staging"
                rps, p99, errors = measure(url, script, args)
                figures[name].append((rps, p99))
                if name == "captured":
                    sent += round(rps * (args.duration + args.warmup))
                print(
                    f"   round {round_} {name:8}: {rps:8,.0f} req/s  p99 {p99:6.2f} ms {errors}",
                    flush=True,
                )
        report(figures, before, capture_counts(host), sent, args)
    finally:
        modelci(env, "serve", "--stop", check=False)


def capture_counts(host: str) -> dict[str, Any]:
    status, body = http(f"{host}/-/endpoints", timeout=10)
    assert status == 200, body
    counts: dict[str, Any] = json.loads(body)["capture"]
    return counts


def cpu_cost() -> tuple[float, float]:
    """Microseconds of the host's CPU per request for sampling (`offer`, at 20 %), and per
    captured record for encoding and writing it (to a folder store): the capture's own cost,
    measured apart from the machine's other load."""
    import tempfile
    import time

    from modelci.serve.capture import Capture, Sampled, write_batch
    from modelci.serve.proxy import Answer
    from modelci.serve.workers import LaunchSpec
    from modelci.store.local import LocalStore

    spec = LaunchSpec(
        "ep", "m", "staging", "v", "c", "", "", "", "0" * 64, "", None, 1, 1, 0, "",
        capture_percent=PERCENT,
    )  # fmt: skip
    answer = Answer(200, b'{"predictions": [3.5]}', "application/json", ())
    capture = Capture(lambda: LocalStore(Path("/nonexistent")), max_pending=10**9)
    count = 200_000
    started = time.perf_counter()
    for _ in range(count):
        capture.offer(spec, b"[[1, 2]]", "application/json", answer)
    offer_us = (time.perf_counter() - started) / count * 1e6
    records = [Sampled("ep", "v", time.time(), b"[[1, 2]]", "application/json", b"3.5", "text/csv")]
    records *= 20_000
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        write_batch(LocalStore(Path(scratch)), records)
        record_us = (time.perf_counter() - started) / len(records) * 1e6
    return offer_us, record_us


def report(
    figures: dict[str, list[tuple[float, float]]],
    before: dict[str, Any],
    after: dict[str, Any],
    sent: int,
    args: argparse.Namespace,
) -> None:
    rps = {name: statistics.median(r for r, _ in runs) for name, runs in figures.items()}
    p99 = {name: statistics.median(p for _, p in runs) for name, runs in figures.items()}
    # each round's pair ran back to back: the median of their ratios resists the machine's
    # other load better than a ratio of medians
    ratio = statistics.median(
        c / p if p else float("nan")
        for (p, _), (c, _) in zip(figures["plain"], figures["captured"], strict=True)
    )
    print()
    print(f"through the host, {args.connections} connections, medians of {args.rounds} rounds")
    for name in MODELS:
        print(f"  {name:8}: {rps[name]:8,.0f} req/s  p99 {p99[name]:6.2f} ms")
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    lost = (1 - ratio) * 100
    print(
        f"  capture at {PERCENT} % / plain (median of the rounds' ratios): {ratio:.3f}x "
        f"throughput ({lost:+.1f} % lost), "
        f"p99 {p99['captured'] - p99['plain']:+.2f} ms  "
        f"[target >= {TARGET_RATIO:.2f}x: {verdict}]"
    )
    offer_us, record_us = cpu_cost()
    per_request_us = offer_us + PERCENT / 100 * record_us
    print(
        f"  capture's own CPU: {offer_us:.2f} us per request to sample, {record_us:.1f} us per "
        f"record to encode and write: {per_request_us:.2f} us per request, "
        f"{per_request_us * rps['plain'] / 1e4:.2f} % of one core at the plain rate"
    )
    captured = after["captured"] - before["captured"]
    dropped = after["dropped"] - before["dropped"]
    share = captured / sent * 100 if sent else float("nan")
    print(
        f"  captured {captured:,} of ~{sent:,} requests ({share:.1f} %), dropped {dropped:,}, "
        f"written {after['written']:,} in {after['files']:,} files, pending {after['pending']}"
    )


if __name__ == "__main__":
    main()
