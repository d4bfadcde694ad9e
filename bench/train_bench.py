"""Training overheads, each measured against a baseline in the same run.

- `modelci train` of a 5-second job against running the same script by hand, in the same
  environment with the same SageMaker variables: target at most 1.10x.
- A fingerprint-cache hit (a new commit that does not touch the model): at most 0.5 s.
- An environment cache hit (`modelci build` with the environment built): at most 0.3 s.

Run: `.venv/bin/python bench/train_bench.py [--runs 3]` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "train-bench"
MODELCI = Path(sys.executable).parent / "modelci"

SLEEPER = """\
import json, os, time
time.sleep(5)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"slept": 5}, f)
print("loss=0.1")
"""
SPEC = """\
[train]
entrypoint = "train.py"
channels = { train = "data/sleeper/train.csv" }
metrics = { loss = "loss=([0-9.]+)" }
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def modelci(repo: Path, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(MODELCI), "-C", str(repo), *args, "--json"], capture_output=True, text=True
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(
            f"modelci {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return took, json.loads(done.stdout)


def make_repo() -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    repo = WORK / "repo"
    shutil.copytree(ROOT / "examples", repo)
    (repo / "models/sleeper").mkdir(parents=True)
    (repo / "models/sleeper/train.py").write_text(SLEEPER)
    (repo / "models/sleeper/model.toml").write_text(SPEC)
    (repo / "models/sleeper/requirements.txt").write_text("")
    (repo / "data/sleeper").mkdir(parents=True)
    (repo / "data/sleeper/train.csv").write_text("id,x\n1,2\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(
        repo,
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.com",
        "commit",
        "-qm",
        "bench repository",
    )
    return repo


def by_hand(job_dir: Path, python: str) -> float:
    """The same script, same interpreter, same job folder and variables, no modelci."""
    from modelci.runtime.jobdir import JobDir, environment

    job = JobDir(job_dir)
    env = dict(os.environ)
    env.update(environment(job, {}, ["train"], entrypoint="train.py", seed=0))
    started = time.perf_counter()
    subprocess.run([python, "train.py"], cwd=job.code, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    repo = make_repo()
    print(f"repository: {repo}")
    build_cold, built = modelci(repo, "build", "sleeper")
    print(f"first build of the environment: {build_cold:.2f} s")
    python = built["environments"][0]["python"]

    train_times, hand_times = [], []
    job_dir = None
    for _ in range(args.runs):
        took, document = modelci(repo, "train", "sleeper", "--force")
        train_times.append(took)
        job_dir = Path(document["versions"][0]["job_dir"])
        hand_times.append(by_hand(job_dir, python))

    git(
        repo,
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "unrelated",
        "--author",
        "bench <bench@example.com>",
    )
    hit_times = []
    for index in range(args.runs):
        if index:
            git(
                repo,
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.com",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                f"unrelated {index}",
            )
        took, document = modelci(repo, "train", "sleeper")
        assert document["versions"][0]["reused_from"], document
        hit_times.append(took)

    env_hits = []
    for _ in range(args.runs):
        took, document = modelci(repo, "build", "sleeper")
        assert document["environments"][0]["status"] == "cached", document
        env_hits.append(took)

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - started

    train_s, hand_s = statistics.median(train_times), statistics.median(hand_times)
    rows = [
        (
            "train a 5 s job",
            train_s,
            f"{train_s / hand_s:.3f}x by hand ({hand_s:.2f} s)",
            "<= 1.10x",
            train_s / hand_s <= 1.10,
        ),
        (
            "fingerprint-cache hit",
            statistics.median(hit_times),
            "-",
            "<= 0.5 s",
            statistics.median(hit_times) <= 0.5,
        ),
        (
            "environment-cache hit",
            statistics.median(env_hits),
            f"{statistics.median(env_hits) / bare:.1f}x `python -c pass` ({bare:.3f} s)",
            "<= 0.3 s",
            statistics.median(env_hits) <= 0.3,
        ),
    ]
    print(f"\n{'case':24} {'median s':>9}  {'against':40} {'target':10} result")
    for name, seconds, against, target, ok in rows:
        print(f"{name:24} {seconds:9.3f}  {against:40} {target:10} {'PASS' if ok else 'FAIL'}")
    print(
        f"\nruns: {args.runs}; all times: train {[round(t, 2) for t in train_times]}, "
        f"by hand {[round(t, 2) for t in hand_times]}, hits {[round(t, 3) for t in hit_times]}"
        f", env hits {[round(t, 3) for t in env_hits]}"
    )


if __name__ == "__main__":
    main()
