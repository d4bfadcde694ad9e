"""The pipelines' costs and the pointer race through the health-checked deploy.

- `modelci run` with nothing changed, on a copy of the example repository (after a first, real
  run that builds, trains, tests and deploys both scikit-learn models): median of 5, target at
  most 2 s, printed beside a bare `python -c pass` for reference.
- The pointer race through deploy: 4 processes each make N successful `deploy` calls of one
  model to staging (library function, --skip-tests --force), each alternating between two
  trained versions and retrying on PointerConflict. Afterwards the registry must count every
  update: the pointer's generation moved once per update (a deploy that failed or was
  superseded by another racer's moved it too) and the log holds one deploy event per update.
  Target: 0 lost updates.

Run: `.venv/bin/python bench/pipeline_bench.py [--runs 5] [--processes 4] [--deploys 25]` from the
repository root. Exits 0 (the table says PASS or FAIL).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "pipeline-bench"
MODELCI = Path(sys.executable).parent / "modelci"
IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.com")

# The race's model: the tests' stdlib toy, so that each version server starts in a blink.
sys.path.insert(0, str(ROOT))
from tests.support.ports import free_port  # noqa: E402
from tests.support.toy import INFERENCE, SERVED_SPEC, train_script  # noqa: E402

TRAIN = train_script()
SPEC = SERVED_SPEC
RACE_MODEL = "toy"
RACE_ENVIRONMENT = "staging"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *IDENTITY, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def modelci(repo: Path, *args: str, check: bool = True) -> tuple[float, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(MODELCI), "-C", str(repo), *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if check and done.returncode != 0:
        sys.exit(
            f"modelci {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return took, json.loads(done.stdout) if done.stdout.strip() else None


# --- (a) modelci run with nothing changed --------------------------------------------------------


def example_repo() -> Path:
    repo = WORK / "examples"
    shutil.copytree(
        ROOT / "examples", repo, ignore=shutil.ignore_patterns("__pycache__", ".modelci")
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "example repository")
    return repo


def bench_run(runs: int) -> list[tuple[str, str, str, str, bool]]:
    repo = example_repo()
    print(f"(a) first `modelci run` in {repo} (builds, trains and tests for real) ...", flush=True)
    try:
        first_s, first = modelci(repo, "run")
        print(
            f"    first run: {first_s:.1f} s: "
            + ", ".join(f"{m['model']} {m['status']}" for m in first["models"]),
            flush=True,
        )
        times, cpu = [], []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            took, document = modelci(repo, "run")
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            steps = {s for m in document["models"] for s in m["steps"].values()}
            assert steps == {"cached"} and document["models"], document
            times.append(took)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    finally:
        modelci(repo, "serve", "--stop", check=False)
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    median, bare_s = statistics.median(times), statistics.median(bare)
    return [
        (
            "first `run` (2 models, real work)",
            f"{first_s:.1f} s",
            "-",
            "-",
            all(m["status"] == "done" for m in first["models"]),
        ),
        (
            f"`run`, nothing changed (median of {runs})",
            f"{median:.2f} s",
            f"{median / bare_s:.1f}x `python -c pass` ({bare_s:.3f} s); "
            f"CPU {statistics.median(cpu):.2f} s",
            "<= 2 s",
            median <= 2.0,
        ),
    ]


# --- (b) the pointer race through deploy ---------------------------------------------------------


def race_repo() -> tuple[Path, list[str]]:
    repo = WORK / "race"
    (repo / "models/toy").mkdir(parents=True)
    (repo / "data/toy").mkdir(parents=True)
    (repo / ".gitignore").write_text(".modelci/\n")
    (repo / "models/toy/train.py").write_text(TRAIN)
    (repo / "models/toy/inference.py").write_text(INFERENCE)
    (repo / "models/toy/requirements.txt").write_text("")
    rows = "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(1, 21))
    for name in ("train", "test"):
        (repo / f"data/toy/{name}.csv").write_text("a,b,label\n" + rows)
    git(repo, "init", "-q", "-b", "main")
    versions = []
    for bias in (0.5, 1.5):
        (repo / "models/toy/model.toml").write_text(SPEC.format(bias=bias))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"toy, bias {bias}")
        _, trained = modelci(repo, "train", RACE_MODEL)
        versions.append(trained["versions"][0]["version"])
    return repo, versions


def racer(
    root: str,
    versions: list[str],
    deploys: int,
    go: EventType,
    results: multiprocessing.Queue[dict[str, Any]],
) -> None:
    """Make `deploys` successful deploys, each to the version the pointer does not name."""
    from modelci.deploy import open_deployer
    from modelci.deploy.rollout import deploy
    from modelci.errors import PointerConflict
    from modelci.workspace import Workspace

    workspace = Workspace(Path(root))
    counts: Counter[str] = Counter()
    go.wait()
    started = time.perf_counter()
    with workspace.registry() as registry:
        deployer = open_deployer(workspace)
        while counts["deployed"] < deploys:
            pointer = registry.get_pointer(RACE_MODEL, RACE_ENVIRONMENT)
            target = versions[1] if pointer and pointer.version == versions[0] else versions[0]
            try:
                outcome = deploy(
                    workspace,
                    registry,
                    deployer,
                    RACE_MODEL,
                    RACE_ENVIRONMENT,
                    version=target,
                    skip_tests=True,
                    force=True,
                    note=lambda _message: None,
                )
            except PointerConflict:
                counts["conflicts"] += 1
                continue
            # unchanged: another racer set it first, no update; superseded: an update that
            # another racer's replaced before it served, or no update at all (the pointer
            # named the version already, or another racer moved it between this one's read
            # and its compare-and-set): the outcome says whether it moved the pointer
            if not outcome.moved:
                counts["unchanged"] += 1
            else:
                counts[outcome.status] += 1
    results.put({"counts": dict(counts), "seconds": time.perf_counter() - started})


@dataclass
class RaceFigures:
    successes: int
    conflicts: int
    unchanged: int
    failed: int
    superseded: int
    generation_moves: int
    deploy_events: int
    rollback_events: int
    seconds: float

    @property
    def updates(self) -> int:
        """Pointer moves the racers made: a failed or superseded deploy moved the pointer too."""
        return self.successes + self.failed + self.superseded

    @property
    def lost_updates(self) -> int:
        """Updates the pointer's generation does not count (automatic rollbacks, which also
        move it, set aside)."""
        return self.updates - (self.generation_moves - self.rollback_events)

    @property
    def sound(self) -> bool:
        """Nothing lost, and the log holds one deploy event per update."""
        return self.lost_updates == 0 and self.deploy_events == self.updates


def bench_race(processes: int, deploys: int) -> list[tuple[str, str, str, str, bool]]:
    from modelci.registry import open_registry
    from modelci.workspace import Workspace

    print(f"(b) pointer race: {processes} processes x {deploys} deploys ...", flush=True)
    repo, versions = race_repo()
    workspace = Workspace(repo)
    url = workspace.project.registry.url
    try:
        # the first deploy starts the endpoint host, so that the racers find it running
        _, first = modelci(
            repo,
            "deploy",
            RACE_MODEL,
            "--env",
            RACE_ENVIRONMENT,
            "--version",
            versions[0],
            "--skip-tests",
        )
        assert first["status"] == "deployed", first
        with open_registry(url, repo) as registry:
            pointer = registry.get_pointer(RACE_MODEL, RACE_ENVIRONMENT)
            assert pointer is not None
            start_generation = pointer.generation
            start_events = {e.id for e in registry.events(RACE_MODEL)}

        context = multiprocessing.get_context("spawn")
        go = context.Event()
        results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
        racers = [
            context.Process(target=racer, args=(str(repo), versions, deploys, go, results))
            for _ in range(processes)
        ]
        for process in racers:
            process.start()
        started = time.perf_counter()
        go.set()
        reports = [results.get(timeout=600) for _ in racers]
        wall = time.perf_counter() - started
        for process in racers:
            process.join(timeout=60)

        with open_registry(url, repo) as registry:
            pointer = registry.get_pointer(RACE_MODEL, RACE_ENVIRONMENT)
            assert pointer is not None
            new = [e for e in registry.events(RACE_MODEL) if e.id not in start_events]
    finally:
        modelci(repo, "serve", "--stop", check=False)

    total: Counter[str] = Counter()
    for report in reports:
        total.update(report["counts"])
    kinds = Counter(e.kind for e in new if e.environment == RACE_ENVIRONMENT)
    figures = RaceFigures(
        successes=total["deployed"],
        conflicts=total["conflicts"],
        unchanged=total["unchanged"],
        failed=total["failed"] + total["rolled_back"],
        superseded=total["superseded"],
        generation_moves=pointer.generation - start_generation,
        deploy_events=kinds["deploy"],
        rollback_events=kinds["rollback"],
        seconds=wall,
    )
    print(
        f"    successful deploys {figures.successes}, conflicts retried {figures.conflicts}, "
        f"unchanged {figures.unchanged}, failed {figures.failed}, superseded "
        f"{figures.superseded}; generation moved "
        f"{figures.generation_moves}, deploy events {figures.deploy_events}, automatic "
        f"rollbacks {figures.rollback_events}; {wall:.1f} s",
        flush=True,
    )
    return [
        (
            f"deploy race, {processes} processes x {deploys}",
            f"{figures.lost_updates} lost",
            f"{figures.successes / wall:.1f} updates/s ({figures.conflicts} conflicts retried)",
            "0 lost",
            figures.sound and figures.successes == processes * deploys,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--deploys", type=int, default=25, help="successful deploys per process")
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ["MODELCI_SERVE_PORT"] = str(free_port())  # not 8080: the user's own host
    rows = bench_run(args.runs) + bench_race(args.processes, args.deploys)

    print(f"\n{'case':44} {'figure':>10}  {'against':56} {'target':8} result")
    for name, figure, against, target, ok in rows:
        print(f"{name:44} {figure:>10}  {against:56} {target:8} {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
