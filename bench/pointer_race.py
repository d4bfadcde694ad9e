"""Pointer race: 8 processes x 250 compare-and-set updates of one pointer, on SQLite and on a
real PostgreSQL server this script starts itself.

Each process reads the pointer and compare-and-sets it, retrying after a conflict, until it has
made 250 successful updates. Afterwards the registry alone must show every success: the final
generation equals the number of successes, and the event log holds one event per success, each
based on a distinct generation. Exits 1 if any update was lost.

    .venv/bin/python bench/pointer_race.py [--processes 8] [--updates 250] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.support, shared with the test suite

from modelci.registry import open_registry  # noqa: E402
from tests.support import race  # noqa: E402
from tests.support.postgres import temporary_postgres  # noqa: E402


@dataclass(frozen=True)
class Figures:
    """What one backend's race produced, as the registry tells it afterwards."""

    backend: str
    successes: int
    conflicts: int
    final_generation: int
    events_logged: int
    duplicate_bases: int
    wall_seconds: float

    @property
    def lost_updates(self) -> int:
        """Successes the pointer's generation does not count."""
        return self.successes - self.final_generation

    @property
    def sound(self) -> bool:
        """Nothing lost, and the log holds each success once, each on its own generation."""
        return (
            self.lost_updates == 0
            and self.events_logged == self.successes
            and self.duplicate_bases == 0
        )

    @property
    def updates_per_second(self) -> float:
        return self.successes / self.wall_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--updates", type=int, default=250, help="successful updates per process")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql"], action="append", help="default: both"
    )
    arguments = parser.parse_args()
    chosen = arguments.backend or ["sqlite", "postgresql"]

    results = []
    for backend, opener in [("sqlite", _sqlite), ("postgresql", _postgresql)]:
        if backend not in chosen:
            continue
        with opener() as (url, root):
            print(f"{backend}: {arguments.processes} processes x {arguments.updates} updates ...")
            results.append(_bench(backend, url, root, arguments.processes, arguments.updates))
    _print(results)
    return 0 if all(f.sound for f in results) else 1


@contextmanager
def _sqlite() -> Iterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="modelci-bench-") as folder:
        yield "sqlite:///.modelci/registry.db", Path(folder)


@contextmanager
def _postgresql() -> Iterator[tuple[str, Path]]:
    # Durable commits (fsync on), as a team's server would run, to compare fairly with SQLite.
    with temporary_postgres(durable=True) as url, tempfile.TemporaryDirectory() as folder:
        yield url, Path(folder)


def _bench(backend: str, url: str, root: Path, processes: int, updates: int) -> Figures:
    with open_registry(url, root) as registry:
        race.prepare(registry, processes)
        outcome = race.run_race(url, root, processes=processes, updates=updates)
        pointer = registry.get_pointer(race.MODEL, race.ENVIRONMENT)
        logged = registry.events(race.MODEL, kind=race.EVENT_KIND)
    bases = Counter(event.details["expected"] for event in logged)
    return Figures(
        backend=backend,
        successes=outcome.successes,
        conflicts=outcome.conflicts,
        final_generation=pointer.generation if pointer is not None else 0,
        events_logged=len(logged),
        duplicate_bases=sum(count - 1 for count in bases.values()),
        wall_seconds=outcome.wall_seconds,
    )


def _print(results: list[Figures]) -> None:
    rows = [
        ("backend", lambda f: f.backend),
        ("successful updates", lambda f: f"{f.successes}"),
        ("conflicts (retried)", lambda f: f"{f.conflicts}"),
        ("final generation", lambda f: f"{f.final_generation}"),
        ("events logged", lambda f: f"{f.events_logged}"),
        ("lost updates", lambda f: f"{f.lost_updates}"),
        ("log = successes", lambda f: "yes" if f.sound else "NO"),
        ("updates/s", lambda f: f"{f.updates_per_second:,.0f}"),
        ("wall time s", lambda f: f"{f.wall_seconds:.2f}"),
    ]
    print()
    for label, value in rows:
        print(f"{label:<22}" + "".join(f"{value(f):>14}" for f in results))


if __name__ == "__main__":
    sys.exit(main())
