"""Benchmark the `modelci serve` endpoint host, and swap versions under load.

    .venv/bin/python bench/host_bench.py [--duration 15] [--warmup 5] [--swaps 10]

On a committed copy of examples/ at bench/.work/host-bench it trains the churn model and deploys
it to staging (`--skip-tests`), which starts the endpoint host. Then wrk (Debian's `wrk`) posts
one JSON row of the 20 features per request at 1 and 64 connections, after a warm-up, to:
(a) the version server's own URL, (b) the host's gateway (`gateway_url` + /invocations), and
(c) the minimal Starlette app of bench/serve_minimal_app.py with the same model file, started as
bench/serve_bench.py starts it. (a) and (b) get `[[...]]`, as SageMaker's clients send it; the
minimal app only reads `{"inputs": [[...]]}`. Reported: requests/s, p99, the ratios host vs
minimal (target >= 0.5x) and own server vs minimal (target >= 0.8x), idle RSS of the version
server and of the host (/proc, whole process trees; the host's without its version servers).

Then the swap test: a second commit changes a hyperparameter and is trained; while wrk loads the
gateway at 32 connections, the endpoint is deployed `--swaps` times, alternating between the two
versions; the target is at least 5,000 requests and no failed one (wrk's non-2xx answers and
socket errors). Everything started is stopped at the end. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import Process, free_port, http, parse_wrk, run_wrk, tree_rss_mib

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "host-bench"
REPO = WORK / "repo"
CONNECTIONS = (1, 64)
SWAP_CONNECTIONS = 32
SWAP_MIN_REQUESTS = 5000
SWAP_WRK_CAP_S = 600  # wrk's own limit; it is interrupted as soon as the swaps are done
STEP_TIMEOUT_S = 900.0


@dataclass
class Figures:
    """One target's figures per connection count."""

    name: str
    rps: dict[int, float] = field(default_factory=dict)
    p99_ms: dict[int, float] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


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


def git(env: dict[str, str], *args: str) -> str:
    return run(["git", "-C", str(REPO), *args], env).strip()


def make_repository(env: dict[str, str]) -> None:
    """A committed copy of examples/, with modelci's state left out of git."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    shutil.copytree(
        ROOT / "examples", REPO, ignore=shutil.ignore_patterns("__pycache__", ".modelci")
    )
    with (REPO / ".gitignore").open("a") as ignore:
        ignore.write(".modelci/\n")
    git(env, "init", "-q", "-b", "main")
    git(env, "add", "-A")
    git(env, "commit", "-q", "-m", "example repository")


def train(env: dict[str, str]) -> str:
    modelci(env, "train", "churn")
    return f"churn-{git(env, 'rev-parse', 'HEAD')[:12]}"


def deploy(env: dict[str, str], version: str, *options: str) -> dict[str, Any]:
    outcome: dict[str, Any] = json.loads(
        modelci(
            env,
            "deploy",
            "churn",
            "--env",
            "staging",
            "--version",
            version,
            "--skip-tests",
            "--json",
            *options,
            check=False,
        )
    )
    if outcome.get("status") not in ("deployed", "unchanged"):
        raise RuntimeError(f"deploy of {version} did not succeed: {outcome}")
    return outcome


def host_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads((REPO / ".modelci/serve/serve.json").read_text())
    return state


def endpoint_state(host_url: str) -> dict[str, Any]:
    status, body = http(f"{host_url}/-/endpoints", timeout=10)
    assert status == 200, body
    endpoints: dict[str, Any] = json.loads(body)["endpoints"]
    return dict(endpoints["churn-staging"])


def model_file(server_pid: int) -> Path:
    """The model file the version server loaded (its --model-dir, from its command line)."""
    arguments = Path(f"/proc/{server_pid}/cmdline").read_bytes().decode().split("\0")
    model_dir = Path(arguments[arguments.index("--model-dir") + 1])
    return next(model_dir.rglob("model.joblib"))


def lua_script(path: Path, body: str) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def first_row() -> list[float]:
    line = (ROOT / "examples/data/churn/test.csv").read_text().splitlines()[1]
    return [float(value) for value in line.split(",")[1:-1]]


def measure(name: str, url: str, script: Path, args: argparse.Namespace) -> Figures:
    """wrk at each connection count against url + /invocations."""
    figures = Figures(name)
    status, answer = http(f"{url}/invocations", script_body(script))
    print(f"-- {name}: {url}/invocations first answer {status} {answer[:60]!r}", flush=True)
    for connections in CONNECTIONS:
        try:
            if args.warmup > 0:
                run_wrk(url, script, connections, args.warmup)
            rps, p99, errors = parse_wrk(run_wrk(url, script, connections, args.duration))
        except subprocess.CalledProcessError as error:
            figures.errors[connections] = f"wrk failed: {error.stderr.strip()[-200:]}"
            continue
        figures.rps[connections], figures.p99_ms[connections] = rps, p99
        if errors:
            figures.errors[connections] = errors
        print(f"   c={connections}: {rps:,.0f} req/s, p99 {p99:.2f} ms {errors}", flush=True)
    return figures


def script_body(script: Path) -> bytes:
    found = re.search(r"wrk\.body = '(.*)'", script.read_text())
    assert found is not None
    return found.group(1).encode()


@dataclass
class SwapResult:
    swaps: int = 0
    seconds: list[float] = field(default_factory=list)
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    rps: float = 0.0
    versions_seen: set[str] = field(default_factory=set)
    problem: str = ""


def swap_test(
    env: dict[str, str], gateway: str, script: Path, versions: tuple[str, str], swaps: int
) -> SwapResult:
    """wrk on the gateway at 32 connections while the endpoint swaps `swaps` times."""
    result = SwapResult()
    log = (WORK / "swap-wrk.txt").open("w+")
    wrk = subprocess.Popen(
        [
            "wrk",
            "-t2",
            f"-c{SWAP_CONNECTIONS}",
            f"-d{SWAP_WRK_CAP_S}s",
            "-s",
            str(script),
            f"{gateway}/invocations",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for index in range(swaps):
            target = versions[index % 2]
            began = time.monotonic()
            # going back to the older commit needs --force; it is recorded with the event
            outcome = deploy(env, target, "--force")
            result.seconds.append(time.monotonic() - began)
            metadata = json.loads(http(f"{gateway}/metadata")[1])
            result.versions_seen.add(str(metadata["version"]))
            if metadata["version"] != target or outcome["version"] != target:
                result.problem = f"swap {index + 1}: serving {metadata['version']}, not {target}"
                break
            result.swaps += 1
            print(
                f"   swap {index + 1}: {outcome['previous_version']} -> {target} in "
                f"{result.seconds[-1]:.1f} s",
                flush=True,
            )
    except RuntimeError as error:
        result.problem = str(error)
    finally:
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)  # wrk stops and prints what it measured
        try:
            wrk.wait(timeout=30)
        except subprocess.TimeoutExpired:
            wrk.kill()
            wrk.wait()
    log.seek(0)
    output = log.read()
    log.close()
    found = re.search(r"(\d+) requests in", output)
    result.requests = int(found.group(1)) if found else 0
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result.non_2xx = int(found.group(1)) if found else 0
    found = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result.socket_errors = sum(int(n) for n in found.groups()) if found else 0
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result.rps = float(found.group(1)) if found else 0.0
    if not found:
        result.problem = result.problem or f"no wrk summary: {output.strip()[-300:]}"
    return result


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    results: list[Figures], rss: dict[str, float], swap: SwapResult | None, swaps: int
) -> None:
    print("\none JSON row per request; wrk -t1; one worker per server\n")
    header = ("target", "c=1 req/s", "c=1 p99 ms", "c=64 req/s", "c=64 p99 ms")
    rows = [header]
    for r in results:
        rows.append(
            (
                r.name,
                fmt(r.rps.get(1), ",.0f"),
                fmt(r.p99_ms.get(1), ".2f"),
                fmt(r.rps.get(64), ",.0f"),
                fmt(r.p99_ms.get(64), ".1f"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in results:
        if r.errors:
            print(f"{r.name}: {r.errors}")
    print("\nidle RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    by_name = {r.name: r for r in results}
    minimal = by_name.get("minimal app")
    print("\ntargets:")
    for name, target in (("host gateway", 0.5), ("own server", 0.8)):
        mine = by_name.get(name)
        for connections in CONNECTIONS:
            ours = mine.rps.get(connections) if mine else None
            floor = minimal.rps.get(connections) if minimal else None
            label = f"{name} vs minimal app, c={connections} req/s >= {target}x"
            if not ours or not floor:
                print(f"  {label}: not measured")
                continue
            ratio = ours / floor
            clean = connections not in mine.errors  # type: ignore[union-attr]
            print(f"  {label}: {ratio:.2f}x  {verdict(ratio >= target and clean)}")
    if swap is None:
        print(
            f"  swap test (>= {SWAP_MIN_REQUESTS:,} requests at c={SWAP_CONNECTIONS} across "
            f"{swaps} swaps, 0 failed): not run"
        )
        return
    failed = swap.non_2xx + swap.socket_errors
    ok = (
        swap.swaps == swaps
        and swap.requests >= SWAP_MIN_REQUESTS
        and failed == 0
        and not swap.problem
    )
    mean = sum(swap.seconds) / len(swap.seconds) if swap.seconds else 0.0
    print(
        f"  swap test: {swap.requests:,} requests at c={SWAP_CONNECTIONS} ({swap.rps:,.0f} "
        f"req/s) across {swap.swaps} swaps (mean {mean:.1f} s each, versions served: "
        f"{', '.join(sorted(swap.versions_seen))}); non-2xx {swap.non_2xx}, socket errors "
        f"{swap.socket_errors}  {verdict(ok)}"
    )
    if swap.problem:
        print(f"  swap test problem: {swap.problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per run")
    parser.add_argument("--swaps", type=int, default=10, help="version swaps under load")
    args = parser.parse_args()
    began = time.monotonic()
    if shutil.which("wrk") is None:
        print("wrk is missing: install Debian's package (apt-get install -y wrk)")
        return 0
    env = environment()
    results: list[Figures] = []
    rss: dict[str, float] = {}
    swap: SwapResult | None = None
    minimal: Process | None = None
    try:
        print(f"-- repository {REPO}: train churn, deploy to staging", flush=True)
        make_repository(env)
        first = train(env)
        outcome = deploy(env, first)
        own, gateway = outcome["url"], outcome["gateway_url"]
        host = host_state()
        server = endpoint_state(host["url"])
        server_rss = tree_rss_mib(server["pid"])
        rss = {
            "version server": server_rss,
            "host without its servers": tree_rss_mib(host["pid"]) - server_rss,
            "host with its server": tree_rss_mib(host["pid"]),
        }

        row = first_row()
        plain = lua_script(WORK / "post.lua", json.dumps([row]))
        inputs = lua_script(WORK / "post-inputs.lua", json.dumps({"inputs": [row]}))
        results.append(measure("own server", own, plain, args))
        results.append(measure("host gateway", gateway, plain, args))

        port = free_port()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
        minimal = Process(
            [
                sys.executable,
                str(ROOT / "bench" / "serve_minimal_app.py"),
                "--model",
                str(model_file(server["pid"])),
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            base_env,
            WORK / "minimal.log",
        )
        minimal_url = f"http://127.0.0.1:{port}"
        minimal.wait_ready(minimal_url)
        results.append(measure("minimal app", minimal_url, inputs, args))
        minimal.stop()
        minimal = None

        print("-- swap test: a second version (C = 0.5)", flush=True)
        spec = REPO / "models/churn/model.toml"
        spec.write_text(spec.read_text().replace("C = 1.0", "C = 0.5"))
        git(env, "commit", "-q", "-am", "churn: C = 0.5")
        second = train(env)
        deploy(env, second)  # starts from the newer version: the first swap goes back
        swap = swap_test(env, gateway, plain, (first, second), args.swaps)
    except (RuntimeError, OSError, subprocess.SubprocessError, AssertionError) as error:
        print(f"failed: {error}", flush=True)
    finally:
        if minimal is not None:
            minimal.stop()
        if REPO.exists():
            modelci(env, "serve", "--stop", check=False)
    report(results, rss, swap, args.swaps)
    print(f"\nbench took {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
