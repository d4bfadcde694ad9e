"""From a merge to a serving staging endpoint, against training by hand plus one cold start.

On a copy of the example repository (after a first, real `run` that builds, trains, tests and
deploys both scikit-learn models), each round commits a change of churn's hyperparameter `C`
on main (a merge that touches one model) and times:

- the pipeline: `modelci run` from its start until an invocation of `churn-staging` through
  the endpoint host returns the new version's answer (build, train, test with its
  reproducibility check, gates, deploy with health check and smoke request);
- by hand, in the same environment, with the same data and hyperparameters: churn's train.py
  run directly, then the version server started on its model folder until an invocation
  answers (one endpoint cold start).

The two answers (every test row) must be the same, and the endpoint's metadata must name the
new version. Target: the pipeline at most 1.5x by hand (median of the rounds).

Run: `.venv/bin/python bench/merge_bench.py [--rounds 3]` from the repository root.
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
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "merge-bench"
MODELCI = Path(sys.executable).parent / "modelci"
IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.com")
MODEL = "churn"
ENDPOINT = "churn-staging"
C_VALUES = (0.5, 0.25, 2.0, 0.75, 4.0)
TARGET = 1.5

sys.path.insert(0, str(ROOT))
from tests.support.ports import free_port  # noqa: E402


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *IDENTITY, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def modelci(repo: Path, *args: str, check: bool = True) -> tuple[float, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(MODELCI), "-C", str(repo), *args, "--json"], capture_output=True, text=True
    )
    took = time.perf_counter() - started
    if check and done.returncode != 0:
        sys.exit(
            f"modelci {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return took, json.loads(done.stdout) if done.stdout.strip() else None


def post(url: str, body: bytes) -> bytes | None:
    """One CSV request answered in JSON; None when nothing (or an error) answers."""
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "text/csv", "accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return bytes(answer.read()) if answer.status == 200 else None
    except (OSError, urllib.error.HTTPError):
        return None


def get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError):
        return None


def example_repo() -> Path:
    repo = WORK / "examples"
    shutil.copytree(
        ROOT / "examples", repo, ignore=shutil.ignore_patterns("__pycache__", ".modelci")
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "example repository")
    return repo


def test_rows(repo: Path) -> bytes:
    """churn's test channel without its key and label: the request both sides answer."""
    lines = (repo / "data/churn/test.csv").read_text().splitlines()
    return "".join(",".join(line.split(",")[1:-1]) + "\n" for line in lines[1:]).encode()


def merge(repo: Path, c: float) -> str:
    """Commit a change of churn's `C` on main; the new version's name."""
    spec = repo / "models/churn/model.toml"
    text = spec.read_text()
    start = text.index("hyperparameters = ")
    end = text.index("\n", start)
    spec.write_text(text[:start] + f"hyperparameters = {{ C = {c}, max_iter = 200 }}" + text[end:])
    git(repo, "commit", "-qam", f"churn: C = {c}")
    return f"{MODEL}-{git(repo, 'rev-parse', 'HEAD')[:12]}"


def pipeline(repo: Path, version: str, rows: bytes) -> tuple[float, bytes, dict[str, Any]]:
    """`modelci run` from its start until the staging endpoint answers as the new version."""
    started = time.perf_counter()
    _, document = modelci(repo, "run")
    state = json.loads((repo / ".modelci/serve/serve.json").read_text())
    gateway = f"{state['url']}/endpoints/{ENDPOINT}"
    answer = post(f"{gateway}/invocations", rows)
    took = time.perf_counter() - started
    [churn] = [m for m in document["models"] if m["model"] == MODEL]
    assert churn["status"] == "done" and churn["version"] == version, churn
    assert churn["steps"]["train"] == "done" and churn["steps"]["test"] == "done", churn
    assert answer is not None, "the staging endpoint did not answer"
    metadata = get(f"{gateway}/metadata")
    assert metadata and metadata.get("version") == version, metadata
    return took, answer, churn


def by_hand(repo: Path, python: str, runtime: str, c: float, rows: bytes) -> tuple[float, bytes]:
    """train.py run directly (same interpreter, data, hyperparameters and seed), then the
    version server started on its model folder until an invocation answers."""
    folder = WORK / f"by-hand-{c}"
    shutil.rmtree(folder, ignore_errors=True)
    for channel in ("train", "test"):
        (folder / channel).mkdir(parents=True)
        shutil.copy(repo / f"data/churn/{channel}.csv", folder / channel)
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(folder / "model"),
        "SM_CHANNEL_TRAIN": str(folder / "train"),
        "SM_CHANNEL_TEST": str(folder / "test"),
        "SM_OUTPUT_DATA_DIR": str(folder / "output/data"),
        "MODELCI_SEED": "42",
        "PYTHONHASHSEED": "42",
    }
    port = free_port()
    started = time.perf_counter()
    subprocess.run(
        [python, "train.py", "-C", str(c), "--max_iter", "200"],
        cwd=repo / "models/churn",
        env=env,
        check=True,
        capture_output=True,
    )
    trained = time.perf_counter()
    server = subprocess.Popen(
        [
            python,
            "-m",
            "modelci.runtime.server",
            "--model-dir",
            str(folder / "model"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env={**os.environ, "PYTHONPATH": runtime},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answer = None
        deadline = time.monotonic() + 120
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            answer = post(f"http://127.0.0.1:{port}/invocations", rows)
            if answer is None:
                time.sleep(0.02)
        took = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answer is not None, "the version server started by hand did not answer"
    train_s = trained - started
    print(f"    by hand: train {train_s:.2f} s, cold start {took - train_s:.2f} s", flush=True)
    return took, answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help=f"merges, at most {len(C_VALUES)}")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, len(C_VALUES)))

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ["MODELCI_SERVE_PORT"] = str(free_port())  # not 8080: the user's own host
    repo = example_repo()
    rows = test_rows(repo)
    from modelci.envs.runtime_copy import runtime_dir

    runtime = str(runtime_dir(repo / ".modelci"))
    pipeline_times: list[float] = []
    hand_times: list[float] = []
    try:
        print(f"first `modelci run` in {repo} (builds, trains, tests, deploys) ...", flush=True)
        first_s, first = modelci(repo, "run")
        print(
            f"    {first_s:.1f} s: "
            + ", ".join(f"{m['model']} {m['status']}" for m in first["models"]),
            flush=True,
        )
        _, built = modelci(repo, "build", MODEL)
        python = built["environments"][0]["python"]
        for c in C_VALUES[:rounds]:
            version = merge(repo, c)
            print(f"merge: churn C = {c} -> {version}", flush=True)
            took, answer, churn = pipeline(repo, version, rows)
            print(f"    pipeline: {took:.2f} s, steps {churn['steps']}", flush=True)
            hand, expected = by_hand(repo, python, runtime, c, rows)
            assert answer == expected, "the endpoint's answer is not the one trained by hand"
            pipeline_times.append(took)
            hand_times.append(hand)
    finally:
        modelci(repo, "serve", "--stop", check=False)

    pipeline_s, hand_s = statistics.median(pipeline_times), statistics.median(hand_times)
    ratio = pipeline_s / hand_s
    print(f"\n{'case':44} {'median s':>9}  {'against':36} {'target':8} result")
    print(
        f"{'merge to serving staging (run + invoke)':44} {pipeline_s:9.2f}  "
        f"{f'{ratio:.2f}x by hand ({hand_s:.2f} s)':36} {f'<= {TARGET}x':8} "
        f"{'PASS' if ratio <= TARGET else 'FAIL'}"
    )
    print(
        f"\nrounds: {rounds}; pipeline {[round(t, 2) for t in pipeline_times]}, "
        f"by hand (train + cold start) {[round(t, 2) for t in hand_times]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
