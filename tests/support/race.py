"""Several processes racing compare-and-set updates of one pointer.

Each worker loops: read the pointer, compare-and-set it with the generation it read, and on a
PointerConflict read again, until it has made its share of successful updates. Every success
logs an event whose details name the worker, its sequence number and the generation it expected,
so the caller can prove from the registry alone that no update was lost.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelci.errors import PointerConflict
from modelci.registry import Event, Registry, VersionRecord, open_registry

MODEL = "race"
ENVIRONMENT = "staging"
EVENT_KIND = "deploy"
DEADLINE_S = 300.0


@dataclass(frozen=True)
class WorkerResult:
    """What one worker did."""

    worker: int
    successes: int
    conflicts: int
    seconds: float


@dataclass(frozen=True)
class RaceOutcome:
    """Every worker's result and the wall time from the common start to the last finish."""

    workers: list[WorkerResult]
    wall_seconds: float

    @property
    def successes(self) -> int:
        return sum(w.successes for w in self.workers)

    @property
    def conflicts(self) -> int:
        return sum(w.conflicts for w in self.workers)


def race_versions(count: int) -> list[str]:
    """Names of the versions the workers point at, in the `<model>-<sha12>` form."""
    return [f"{MODEL}-{index:012x}" for index in range(count)]


def prepare(registry: Registry, count: int) -> list[str]:
    """Register the versions the race points at."""
    names = race_versions(count)
    for index, name in enumerate(names):
        registry.add_version(
            VersionRecord(version=name, model=MODEL, commit=f"{index:040x}", status="ready")
        )
    return names


def run_race(url: str, root: Path, *, processes: int, updates: int) -> RaceOutcome:
    """Start `processes` workers (spawned, so nothing is shared but the database) that each make
    `updates` successful compare-and-set updates; wait for them with a deadline."""
    context = multiprocessing.get_context("spawn")
    start_line = context.Barrier(processes + 1)
    results: Any = context.Queue()
    versions = race_versions(processes)
    workers = [
        context.Process(
            target=worker,
            args=(url, str(root), index, updates, versions, start_line, results),
            name=f"race-{index}",
        )
        for index in range(processes)
    ]
    for process in workers:
        process.start()
    try:
        # Every worker has connected (and checked the schema) before anyone starts.
        try:
            start_line.wait(timeout=DEADLINE_S)
        except threading.BrokenBarrierError as error:
            reason = results.get(timeout=DEADLINE_S)
            raise RuntimeError(f"a race worker failed before the start: {reason}") from error
        started = time.perf_counter()
        collected: list[WorkerResult] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(collected) < processes:
            try:
                item = results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty as error:
                raise RuntimeError(f"race workers did not finish within {DEADLINE_S} s") from error
            if isinstance(item, str):
                raise RuntimeError(f"a race worker failed: {item}")
            collected.append(item)
        wall = time.perf_counter() - started
    finally:
        for process in workers:
            process.join(timeout=DEADLINE_S)
            if process.is_alive():
                process.kill()
                process.join()
    return RaceOutcome(sorted(collected, key=lambda w: w.worker), wall)


def worker(
    url: str,
    root: str,
    index: int,
    updates: int,
    versions: list[str],
    start_line: Any,
    results: Any,
) -> None:
    """One racer (runs in a spawned process); puts a WorkerResult, or an error text, on
    `results`."""
    try:
        with open_registry(url, Path(root)) as registry:
            registry.get_pointer(MODEL, ENVIRONMENT)
            start_line.wait(timeout=DEADLINE_S)
            results.put(_race(registry, index, updates, versions))
    except BaseException as error:
        results.put(f"worker {index}: {type(error).__name__}: {error}")
        start_line.abort()  # the parent stops waiting for a start that will never come
        raise


def _race(registry: Registry, index: int, updates: int, versions: list[str]) -> WorkerResult:
    started = time.perf_counter()
    deadline = time.monotonic() + DEADLINE_S
    successes = conflicts = 0
    while successes < updates:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {successes} of {updates} updates within {DEADLINE_S} s")
        current = registry.get_pointer(MODEL, ENVIRONMENT)
        expected = current.generation if current is not None else None
        event = Event(
            kind=EVENT_KIND,
            model=MODEL,
            actor=f"worker-{index}",
            details={"worker": index, "seq": successes, "expected": expected},
        )
        try:
            registry.set_pointer(
                MODEL,
                ENVIRONMENT,
                versions[(index + successes) % len(versions)],
                expected_generation=expected,
                event=event,
            )
        except PointerConflict:
            conflicts += 1
        else:
            successes += 1
    return WorkerResult(index, successes, conflicts, time.perf_counter() - started)
