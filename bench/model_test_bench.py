"""`modelci test` of the example classifier, all checks, against one training run of its
sample (`modelci train --sample`), both measured in this run: target at most 2.5x.

Run: `.venv/bin/python bench/model_test_bench.py [--runs 3]` from the repository root.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "model-test-bench"
MODELCI = [str(Path(sys.executable).parent / "modelci")]


def run(repo: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([*MODELCI, "-C", str(repo), *args], capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"modelci {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    repo = WORK / "repo"
    shutil.copytree(HERE.parent / "examples", repo)
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=b@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], check=True)
    print(f"repository: {repo}")
    print(f"first train (environment and model): {run(repo, 'train', 'churn'):.1f} s")
    print(f"golden record: {run(repo, 'golden', 'record', 'churn'):.1f} s")

    sample = [run(repo, "train", "churn", "--sample") for _ in range(args.runs)]
    tests = [run(repo, "test", "churn") for _ in range(args.runs)]
    sample_s, test_s = statistics.median(sample), statistics.median(tests)
    ratio = test_s / sample_s
    print(f"\n{'case':34} {'median s':>9}")
    print(f"{'train --sample (one run)':34} {sample_s:9.2f}")
    print(f"{'test (repro x2, golden, gates)':34} {test_s:9.2f}")
    print(f"\nratio {ratio:.2f}x, target <= 2.5x: {'PASS' if ratio <= 2.5 else 'FAIL'}")
    print(f"runs: sample {[round(t, 2) for t in sample]}, test {[round(t, 2) for t in tests]}")


if __name__ == "__main__":
    main()
