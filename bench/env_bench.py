"""Benchmark `modelci build MODEL` on a copy of the example repository.

Target (from the issue): an environment cache hit takes at most 0.3 s of wall time. For
reference the benchmark also times a bare ``python -c pass`` of the same interpreter and prints
the ratio, so that a slow machine can be told apart from a slow modelci.

The copy is new each run, so the first build is cold for modelci (the requirements are resolved
and the environment created); uv's own package cache is whatever this machine has, so "cold"
does not mean downloaded. The benchmark reports; it does not gate CI: it exits 0 whatever the
timings, and 1 only when a command fails.

Run from the project root::

    .venv/bin/python bench/env_bench.py [--runs 9] [--model churn]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT / "examples"
MODELCI = Path(sys.executable).with_name("modelci")
MAX_CACHED_SECONDS = 0.3
TIMEOUT = 600.0


def timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one run of `command`, and what it printed."""
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    return time.perf_counter() - started, done


def make_repo(parent: Path) -> Path:
    """A committed copy of the example repository."""
    root = parent / "examples"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("__pycache__", ".modelci"))
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "-q",
            "-m",
            "examples",
        ],
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="cached builds to time")
    parser.add_argument("--model", default="churn")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="modelci-env-bench-") as temporary:
        root = make_repo(Path(temporary))
        command = [str(MODELCI), "build", args.model]

        cold, done = timed(command, root)
        if done.returncode != 0:
            print(f"cold build failed (exit {done.returncode}):\n{done.stderr}", file=sys.stderr)
            return 1
        cached: list[float] = []
        for _ in range(args.runs):
            seconds, done = timed(command, root)
            if done.returncode != 0 or "cached" not in done.stdout:
                print(
                    f"cached build failed or was not cached:\n{done.stdout}{done.stderr}",
                    file=sys.stderr,
                )
                return 1
            cached.append(seconds)
        bare = [timed([sys.executable, "-c", "pass"], root)[0] for _ in range(args.runs)]

    median, baseline = statistics.median(cached), statistics.median(bare)
    verdict = "ok" if median <= MAX_CACHED_SECONDS else "OVER TARGET"
    print(f"modelci build {args.model}, cold (resolve + create; uv cache as found): {cold:.2f} s")
    print(
        f"modelci build {args.model}, cached: median {median:.3f} s over {args.runs} runs "
        f"(min {min(cached):.3f}, max {max(cached):.3f}); target <= {MAX_CACHED_SECONDS} s: "
        f"{verdict}"
    )
    print(
        f"bare `python -c pass`: median {baseline:.3f} s; cached build / bare = "
        f"{median / baseline:.1f}x"
    )
    print(
        json.dumps(
            {
                "cold_seconds": round(cold, 3),
                "cached_median_seconds": round(median, 3),
                "bare_python_seconds": round(baseline, 3),
                "ratio": round(median / baseline, 2),
                "target_seconds": MAX_CACHED_SECONDS,
                "within_target": median <= MAX_CACHED_SECONDS,
                "cpus": os.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
