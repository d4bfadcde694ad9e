"""Benchmark the dashboard's pages on a generated registry of 200 models x 50 versions.

Target (from the issue): each page renders in under 200 ms. The dashboard runs for real
(`modelci ui` in its own process, on 127.0.0.1) and each page is fetched over HTTP; the time is
the median of several fetches after one warm-up. Beside the wall time, the server's own CPU
time per fetch (from /proc): on a shared machine the wall time also counts waiting for a core.
Two baselines are measured in the same run: the same server's static stylesheet (HTTP, routing
and uvicorn with no registry read or template), and, in this process, the registry reads the
page makes without rendering anything.

The registry (SQLite; each version with metrics, checks and hyperparameters, a train and a test
event, a deploy to staging, and every tenth version released to production) is generated once
into bench/.work/ and reused. The benchmark reports; it exits 0 whatever the timings, and 1 only
when a page fails.

Run from the project root::

    .venv/bin/python bench/ui_bench.py [--models 200] [--versions 50] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx

PROJECT = Path(__file__).resolve().parent.parent
WORK = PROJECT / "bench" / ".work"
MODELCI = Path(sys.executable).with_name("modelci")
TARGET_MS = 200.0
GENERATOR = 2  # bump when the generated content changes


def generate(path: Path, models: int, versions: int) -> None:
    """The registry: `models` x `versions`, with their events and pointers, written in one
    transaction with the registry's own column conversions (registry/columns.py); the schema
    is the registry's, made by `upgrade`."""
    import sqlite3

    from modelci.registry import columns, open_registry

    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with open_registry(f"sqlite:///{partial}", path.parent) as registry:
        registry.upgrade()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows: dict[str, list[tuple[object, ...]]] = {"models": [], "versions": [], "events": []}
    pointers: dict[tuple[str, str], dict[str, object]] = {}

    def add(table: str, spec: tuple[columns.Col, ...], **values: object) -> None:
        rows[table].append(tuple(columns.to_sqlite(c, values.get(c.name)) for c in spec))

    def event(moment: datetime, kind: str, model: str, **values: object) -> None:
        values.setdefault("details", {})
        add("events", columns.EVENTS[1:], time=moment, kind=kind, model=model, **values)

    for m in range(models):
        model = f"model-{m:03d}"
        add("models", columns.MODELS, name=model, created_at=start)
        for v in range(versions):
            moment = start + timedelta(hours=m * versions + v)
            commit = f"{m:04x}{v:08x}".ljust(40, "0")
            version = f"{model}-{commit[:12]}"
            accuracy = 0.8 + (v * 7 % 13) / 100
            check = {
                "name": "accuracy",
                "kind": "gate",
                "passed": accuracy >= 0.81,
                "expected": ">= 0.81",
                "actual": accuracy,
                "message": "",
                "skipped": False,
            }
            add(
                "versions",
                columns.VERSIONS[1:],
                version=version,
                model=model,
                commit=commit,
                status="ready",
                fingerprint=f"{m:08x}{v:08x}".ljust(64, "f"),
                artifact_uri=f"file:///artifacts/{version}",
                artifact_sha256="a" * 64,
                metrics={"accuracy": accuracy, "f1": 0.7 + v / 1000},
                lock_hash="1" * 64,
                actor="Bench <bench@example.com>",
                details={
                    "tests": {"passed": accuracy >= 0.81, "checks": [check]},
                    "hyperparameters": {"C": round(1 / (v + 1), 4), "max_iter": 200},
                },
                created_at=moment,
                updated_at=moment,
            )
            for kind in ("train", "test"):
                event(moment, kind, model, version=version, commit=commit, actor="ci")
            for environment in ["staging"] + (["production"] if v % 10 == 9 else []):
                before = pointers.get((model, environment))
                event(
                    moment,
                    "deploy" if environment == "staging" else "release",
                    model,
                    version=version,
                    environment=environment,
                    from_version=before["version"] if before else None,
                    to_version=version,
                    commit=commit,
                    actor="ci",
                )
                pointers[(model, environment)] = {
                    "model": model,
                    "environment": environment,
                    "version": version,
                    "generation": int(before["generation"]) + 1 if before else 1,  # type: ignore[call-overload]
                    "updated_at": moment,
                    "actor": "ci",
                }
    connection = sqlite3.connect(partial)
    with connection:
        for table, spec in (
            ("models", columns.MODELS),
            ("versions", columns.VERSIONS[1:]),
            ("events", columns.EVENTS[1:]),
        ):
            names = ", ".join(f'"{c.name}"' for c in spec)
            marks = ", ".join("?" for _ in spec)
            connection.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows[table])
        names = ", ".join(f'"{c.name}"' for c in columns.POINTERS)
        connection.executemany(
            f"INSERT INTO pointers ({names}) VALUES ({', '.join('?' for _ in columns.POINTERS)})",
            [
                tuple(columns.to_sqlite(c, p[c.name]) for c in columns.POINTERS)
                for p in pointers.values()
            ],
        )
    connection.close()
    partial.rename(path)


def median_ms(fetch: Callable[[], object], runs: int) -> float:
    fetch()  # warm-up: templates compiled, caches filled
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fetch()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    database = WORK / f"ui-registry-{args.models}x{args.versions}-g{GENERATOR}.db"
    if not database.exists():
        print(f"generating {database.name} (once)...", file=sys.stderr)
        generate(database, args.models, args.versions)
    url = f"sqlite:///{database}"

    from modelci.registry import open_registry
    from modelci.ui import views

    model = f"model-{args.models // 2:03d}"
    commit = f"{args.models // 2:04x}{args.versions - 1:08x}".ljust(40, "0")
    version = f"{model}-{commit[:12]}"
    older = f"{model}-{commit[:4]}{args.versions - 10:08x}"
    moment = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    environments = ["staging", "production"]
    with open_registry(url, WORK) as registry:
        at = datetime.fromisoformat(moment)
        reads: dict[str, Callable[[], object]] = {
            "/": lambda: views.overview(registry, environments),
            f"/models/{model}": lambda: views.model_page(registry, model, environments),
            f"/versions/{version}": lambda: views.version_page(registry, version),
            f"/compare?a={older}&b={version}": lambda: [
                registry.get_version(older),
                registry.get_version(version),
            ],
            "/history": lambda: views.history(registry, {}, views.HISTORY_LIMIT),
            f"/history?model={model}&environment=production": lambda: views.history(
                registry, {"model": model, "environment": "production"}, views.HISTORY_LIMIT
            ),
            f"/history?at={quote(moment)}": lambda: (
                views.served_at(registry, at, environments),
                views.history(registry, {}, views.HISTORY_LIMIT),
            ),
        }
        query_ms = {page: median_ms(read, args.runs) for page, read in reads.items()}

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCI_")}
    server = subprocess.Popen(
        [str(MODELCI), "ui", "--registry", url, "--port", str(port)],
        cwd=tempfile.mkdtemp(prefix="ui-bench-"),  # outside any checkout: the registry alone
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    failed = False
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/static/style.css").raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the dashboard did not start") from None
                    time.sleep(0.1)

            def get(path: str) -> Callable[[], object]:
                def fetch() -> object:
                    answer = client.get(path)
                    if answer.status_code != 200:
                        raise SystemExit(f"{path}: HTTP {answer.status_code}")
                    return answer

                return fetch

            static_ms = median_ms(get("/static/style.css"), args.runs)
            print(
                f"registry: {args.models} models x {args.versions} versions "
                f"(SQLite, {database.stat().st_size / 1e6:.1f} MB); median of {args.runs}"
            )
            print(f"baseline: the same server's static stylesheet {static_ms:.1f} ms\n")
            print(
                f"{'page':<62} {'render ms':>9} {'cpu ms':>7} {'reads ms':>9} {'x static':>9}"
                "  verdict"
            )
            for page in reads:
                cpu_before = _cpu_seconds(server.pid)
                page_ms = median_ms(get(page), args.runs)
                cpu_ms = (_cpu_seconds(server.pid) - cpu_before) * 1000 / (args.runs + 1)
                verdict = "ok" if page_ms < TARGET_MS else f"OVER {TARGET_MS:.0f} ms"
                failed |= page_ms >= TARGET_MS
                shown = page if len(page) <= 62 else page[:59] + "..."
                print(
                    f"{shown:<62} {page_ms:9.1f} {cpu_ms:7.1f} {query_ms[page]:9.1f} "
                    f"{page_ms / static_ms:9.1f}  {verdict}"
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\ntarget: every page under {TARGET_MS:.0f} ms: {'missed' if failed else 'met'}")
    return 0


def _cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process has used (Linux /proc): what a page costs the
    server whatever else the machine runs meanwhile (10 ms granularity, hence averaged)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    sys.exit(main())
