"""Benchmark modelci's inference server against `mlflow models serve` and a minimal app.

    .venv/bin/python bench/serve_bench.py [--duration 15] [--warmup 5] [--workers 1]

Trains the example churn classifier into bench/.work/serve/, then starts, one at a time and each
on a free port of 127.0.0.1 with the same number of workers: modelci's server
(`python -m modelci.runtime.server`), a minimal Starlette-on-uvicorn app calling `predict` inline
(bench/serve_minimal_app.py), and `mlflow models serve` 3.17.2 from its own virtualenv at
bench/.work/mlflow-venv (created on first run). Each gets one JSON row of the model's 20 features
per request, `{"inputs": [[...]]}`, from wrk (Debian's `wrk`) at 1 and 64 connections after a
warm-up. Reported: requests/s, p99 latency, cold start (process start to the first 200 on
/ping), idle RSS summed over the server's process tree, and the targets: modelci at 64
connections >= 3x MLflow and >= 0.8x the minimal app, p99 at 1 connection within 1 ms of the
minimal app's. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "serve"
MLFLOW_VENV = ROOT / "bench" / ".work" / "mlflow-venv"
MLFLOW_VERSION = "3.17.2"
DATA = ROOT / "examples" / "data" / "churn"
READY_DEADLINE_S = 120.0
CONNECTIONS = (1, 64)


@dataclass
class Result:
    """One server's figures."""

    name: str
    cold_start_s: float | None = None
    idle_rss_mib: float | None = None
    rps: dict[int, float] = field(default_factory=dict)
    p99_ms: dict[int, float] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    mean_batch: float | None = None
    note: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def train_model() -> Path:
    """The example churn model, trained by its own train.py into bench/.work/serve/model."""
    model_dir = WORK / "model"
    for channel in ("train", "test"):
        (WORK / channel).mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / f"{channel}.csv", WORK / channel)
    env = os.environ | {
        "SM_MODEL_DIR": str(model_dir),
        "SM_CHANNEL_TRAIN": str(WORK / "train"),
        "SM_CHANNEL_TEST": str(WORK / "test"),
    }
    script = ROOT / "examples" / "models" / "churn" / "train.py"
    subprocess.run([sys.executable, str(script)], env=env, check=True, capture_output=True)
    return model_dir


def first_row() -> list[float]:
    line = (DATA / "test.csv").read_text().splitlines()[1]
    return [float(value) for value in line.split(",")[1:-1]]


def sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def prepare_mlflow(model_dir: Path) -> tuple[Path | None, str]:
    """MLflow's venv (made once) and the model saved in MLflow's format; None and why if not."""
    python = MLFLOW_VENV / "bin" / "python"
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    check = [str(python), "-c", "import mlflow, sklearn; print(mlflow.__version__)"]
    ready = python.exists() and subprocess.run(check, capture_output=True, text=True).stdout
    if not ready or ready.strip() != MLFLOW_VERSION:
        print(f"installing mlflow=={MLFLOW_VERSION} into {MLFLOW_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(MLFLOW_VENV)], check=True)
        install = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"mlflow=={MLFLOW_VERSION}",
                f"scikit-learn=={sklearn_version()}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if install.returncode != 0:
            return None, f"mlflow could not be installed: {install.stderr.strip()[-300:]}"
    saved = WORK / "mlflow-model"
    shutil.rmtree(saved, ignore_errors=True)
    save = (
        "import joblib, mlflow.sklearn, sys\n"
        "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2])\n"
    )
    result = subprocess.run(
        [str(python), "-c", save, str(model_dir / "model.joblib"), str(saved)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None, f"mlflow could not save the model: {result.stderr.strip()[-300:]}"
    return saved, ""


def http(url: str, body: bytes | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    total_kib = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)
        total_kib += int(found.group(1)) if found else 0
    return total_kib / 1024


class Process:
    """A server started in its own session, stopped by signalling that session's group."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path):
        self.log = log.open("w")
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, url: str) -> float:
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"exited with {self.popen.returncode}; see {self.log.name}")
            try:
                if http(f"{url}/ping", timeout=1.0)[0] == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"not ready after {READY_DEADLINE_S} s; see {self.log.name}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> str:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"{url}/invocations",
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def parse_wrk(output: str) -> tuple[float, float, str]:
    """Requests/s, p99 in ms, and any error lines."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    found = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, flags=re.MULTILINE)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99 = float(found.group(1)) * scale[found.group(2)] if found else float("nan")
    errors = [
        line.strip() for line in output.splitlines() if "Non-2xx" in line or "Socket errors" in line
    ]
    return rps, p99, "; ".join(errors)


def batch_counters(url: str) -> tuple[float, float]:
    text = http(f"{url}/metrics")[1].decode()
    values = dict(re.findall(r"^modelci_batch_size_(count|sum) ([0-9.e+]+)$", text, re.MULTILINE))
    return float(values.get("count", 0)), float(values.get("sum", 0))


def measure(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    body: bytes,
    script: Path,
    args: argparse.Namespace,
) -> Result:
    result = Result(name)
    url = f"http://127.0.0.1:{port}"
    print(f"-- {name}: {' '.join(command)}", flush=True)
    process = Process(command, env, WORK / f"{name.split()[0]}.log")
    try:
        result.cold_start_s = process.wait_ready(url)
        status, answer = http(f"{url}/invocations", body)
        print(f"   first answer: {status} {answer[:80].decode(errors='replace')}", flush=True)
        if status != 200:
            result.note = f"answer {status}"
            return result
        result.idle_rss_mib = tree_rss_mib(process.popen.pid)
        for connections in CONNECTIONS:
            if args.warmup > 0:
                run_wrk(url, script, connections, args.warmup)
            before = batch_counters(url) if name == "modelci" else None
            rps, p99, errors = parse_wrk(run_wrk(url, script, connections, args.duration))
            if before is not None and connections == max(CONNECTIONS):
                after = batch_counters(url)
                calls = after[0] - before[0]
                result.mean_batch = (after[1] - before[1]) / calls if calls else None
            result.rps[connections], result.p99_ms[connections] = rps, p99
            if errors:
                result.errors[connections] = errors
            print(f"   c={connections}: {rps:,.0f} req/s, p99 {p99:.2f} ms {errors}", flush=True)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        result.note = str(error)
        print(f"   failed: {error}", flush=True)
    finally:
        process.stop()
    return result


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def report(results: list[Result], workers: int) -> None:
    print(f"\nworkers per server: {workers}; wrk -t1; one JSON row per request\n")
    header = (
        "server",
        "c=1 req/s",
        "c=1 p99 ms",
        "c=64 req/s",
        "c=64 p99 ms",
        "idle RSS MiB",
        "cold start s",
    )
    rows = [header]
    for r in results:
        rows.append(
            (
                r.name,
                fmt(r.rps.get(1), ",.0f"),
                fmt(r.p99_ms.get(1), ".2f"),
                fmt(r.rps.get(64), ",.0f"),
                fmt(r.p99_ms.get(64), ".1f"),
                fmt(r.idle_rss_mib, ".0f"),
                fmt(r.cold_start_s, ".2f"),
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
        if r.errors or r.note:
            print(f"{r.name}: {r.note} {r.errors}")
    by_name = {r.name: r for r in results}
    ours = by_name.get("modelci")
    if ours and ours.mean_batch:
        print(f"modelci mean rows per predict call at c=64: {ours.mean_batch:.1f}")
    print("\ntargets:")
    checks = [
        ("modelci c=64 req/s >= 3x mlflow", "mlflow", 64, "rps", 3.0),
        ("modelci c=64 req/s >= 0.8x minimal", "minimal", 64, "rps", 0.8),
        ("modelci c=1 p99 <= minimal + 1 ms", "minimal", 1, "p99", 1.0),
    ]
    for label, other_name, connections, kind, target in checks:
        other = by_name.get(other_name)
        if not ours or not other:
            print(f"  {label}: not measured")
            continue
        if kind == "rps":
            mine, theirs = ours.rps.get(connections), other.rps.get(connections)
            if not mine or not theirs:
                print(f"  {label}: not measured")
                continue
            ratio = mine / theirs
            verdict = "PASS" if ratio >= target else "FAIL"
            print(f"  {label}: {ratio:.2f}x  {verdict}")
        else:
            mine, theirs = ours.p99_ms.get(connections), other.p99_ms.get(connections)
            if mine is None or theirs is None:
                print(f"  {label}: not measured")
                continue
            delta = mine - theirs
            verdict = "PASS" if delta <= target else "FAIL"
            print(f"  {label}: {mine:.2f} vs {theirs:.2f} ms ({delta:+.2f} ms)  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up seconds per run")
    parser.add_argument("--workers", type=int, default=1, help="server processes, for every server")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    began = time.monotonic()
    if shutil.which("wrk") is None:
        print("wrk is missing: install Debian's package (apt-get install -y wrk)")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    model_dir = train_model()
    body = json.dumps({"inputs": [first_row()]}).encode()
    script = WORK / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
    workers = str(args.workers)
    results = []

    port = free_port()
    results.append(
        measure(
            "modelci",
            [
                sys.executable,
                "-m",
                "modelci.runtime.server",
                "--model-dir",
                str(model_dir),
                "--port",
                str(port),
                "--workers",
                workers,
            ],
            base_env | {"PYTHONPATH": str(ROOT / "src")},
            port,
            body,
            script,
            args,
        )
    )

    port = free_port()
    results.append(
        measure(
            "minimal",
            [
                sys.executable,
                str(ROOT / "bench" / "serve_minimal_app.py"),
                "--model",
                str(model_dir / "model.joblib"),
                "--port",
                str(port),
                "--workers",
                workers,
            ],
            base_env,
            port,
            body,
            script,
            args,
        )
    )

    if args.skip_mlflow:
        print("-- mlflow: skipped (--skip-mlflow)")
    else:
        saved, why = prepare_mlflow(model_dir)
        if saved is None:
            print(f"-- mlflow: not measured: {why}")
        else:
            port = free_port()
            env = base_env | {
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            env.pop("VIRTUAL_ENV", None)
            results.append(
                measure(
                    "mlflow",
                    [
                        str(MLFLOW_VENV / "bin" / "mlflow"),
                        "models",
                        "serve",
                        "-m",
                        str(saved),
                        "--env-manager",
                        "local",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--workers",
                        workers,
                    ],
                    env,
                    port,
                    body,
                    script,
                    args,
                )
            )

    report(results, args.workers)
    print(f"\nbench took {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
