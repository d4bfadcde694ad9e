"""Benchmark modelci's container images: build with a warm layer cache, size, cold start and
serving throughput of a containerized endpoint against a process endpoint.

    .venv/bin/python bench/image_bench.py [--duration 10] [--connections 32]

Needs podman (scripts/ensure-podman) and wrk (Debian's `wrk`). Makes the base image from Debian
packages when podman does not hold it yet (about 2 minutes, once), then in bench/.work/images/
a repository with the toy model (standard library only) and:

- builds its image once, then after a code-only change (a new commit of train.py) again: the
  warm build, against a `--no-cache` build of the same context in the same run (target: the
  warm build under 20 s);
- the image's size and the base image's;
- starts the trained version's server the way the endpoint host does (`launch_spec`, then
  `VersionServer.launch`), as a process in the model's environment and as a container of its
  image: cold start, from launch to the first 200 on /ping;
- drives each with wrk (POST /invocations, one JSON row, `--connections` connections, after a
  warm-up): requests/s and p99 (target: the container at least 0.8x the process).

Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "images"
sys.path.insert(0, str(ROOT))
from tests.support.images import GIT_IDENTITY, image_environ, run_modelci  # noqa: E402
from tests.support.repos import GitRepo  # noqa: E402
from tests.support.toy import SERVED_SPEC, write_toy  # noqa: E402

ROW = "[[1, 2]]"
WARM_BUILD_TARGET_S = 20.0
THROUGHPUT_TARGET = 0.8


def timed(what: str, function: object, *args: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)  # type: ignore[operator]
    took = time.perf_counter() - started
    print(f"  {what}: {took:.2f} s", file=sys.stderr)
    return took, result


def build(root: Path, environ: dict[str, str]) -> str:
    done = run_modelci(root, environ, "build", "toy", "--image", "--json")
    if done.returncode != 0:
        raise SystemExit(f"build failed:\n{done.stdout}{done.stderr}")
    tag: str = json.loads(done.stdout)["environments"][0]["image"]["tag"]
    return tag


def commit(root: Path, message: str) -> None:
    env = os.environ | GIT_IDENTITY
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", message], check=True, env=env)


def wrk(url: str, script: Path, connections: int, seconds: int) -> tuple[float, float]:
    """Requests/s and p99 in ms."""
    command = ["/usr/bin/wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    out = subprocess.run(
        [*command, "-s", str(script), f"{url}/invocations"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    found = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, flags=re.MULTILINE)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99 = float(found.group(1)) * scale[found.group(2)] if found else float("nan")
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"  wrk reported errors:\n{out}", file=sys.stderr)
    return rps, p99


def serve(root: Path, version: str, backend: str, args: argparse.Namespace) -> dict[str, float]:
    """Cold start and throughput of the version's server on `backend` (local | container)."""
    from modelci.serve.workers import VersionServer, launch_spec

    os.environ["MODELCI_DEPLOY_BACKEND"] = backend
    spec = launch_spec(root, "toy-staging", "toy", "staging", version)
    started = time.perf_counter()
    server = VersionServer.launch(spec)
    try:
        problem = asyncio.run(server.wait_ready(120))
        cold = time.perf_counter() - started
        if problem is not None:
            raise SystemExit(f"{backend}: {problem}")
        script = WORK / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{ROW}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        wrk(server.url, script, args.connections, 3)  # warm-up
        rps, p99 = wrk(server.url, script, args.connections, args.duration)
    finally:
        server.stop()
    print(
        f"  {backend}: cold start {cold:.2f} s, {rps:.0f} req/s, p99 {p99:.1f} ms", file=sys.stderr
    )
    return {"cold_start_s": cold, "rps": rps, "p99_ms": p99}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per server")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    from modelci.envs.baseimage import ensure_base_image
    from modelci.envs.engine import require_engine

    engine = require_engine("podman")
    print("base image:", file=sys.stderr)
    _, base_image = timed("found or made", ensure_base_image, engine)
    base = base_image.tag  # type: ignore[attr-defined]

    shutil.rmtree(WORK, ignore_errors=True)
    root = WORK / "repo"
    root.mkdir(parents=True)
    repo = GitRepo(root)
    repo.git("init", "-q", "-b", "main")
    write_toy(repo, SERVED_SPEC.format(bias=0.5))
    commit(root, "toy")
    environ = image_environ(base, "modelci.local")
    print("builds:", file=sys.stderr)
    first_s, _ = timed("first build (layers may be cached by earlier runs)", build, root, environ)
    train = root / "models/toy/train.py"
    train.write_text(train.read_text() + "# a code-only change\n")
    commit(root, "code only")
    warm_s, tag = timed("warm build after a code-only change", build, root, environ)
    context = root / ".modelci/images" / f"toy-{str(tag).rsplit(':', 1)[1]}"
    no_cache = ["build", "--no-cache", "--network=host", "-t", "localhost/modelci-bench:x"]
    cold_s, _ = timed(
        "no-cache build of the same context (baseline)",
        lambda: engine.run([*no_cache, str(context)], what="no-cache build"),
    )
    image_mb = engine.size(str(tag)) / 1e6
    base_mb = engine.size(base) / 1e6

    os.environ.update(image_environ(base, "modelci.local"))
    done = run_modelci(root, dict(os.environ), "train", "toy", "--json")
    if done.returncode != 0:
        raise SystemExit(f"train failed:\n{done.stdout}{done.stderr}")
    version = f"toy-{str(tag).rsplit(':', 1)[1]}"
    print("serving:", file=sys.stderr)
    process = serve(root, version, "local", args)
    container = serve(root, version, "container", args)
    engine.run(["rmi", "-f", "localhost/modelci-bench:x"], what="rmi")

    ratio = container["rps"] / process["rps"]
    print(f"\nimage bench (podman, toy model, wrk -c{args.connections} -d{args.duration}s)")
    print(f"  first build                     {first_s:7.2f} s")
    print(
        f"  warm build, code-only change    {warm_s:7.2f} s   (target < {WARM_BUILD_TARGET_S:g} s)"
    )
    print(
        f"  no-cache build (baseline)       {cold_s:7.2f} s   warm/no-cache {warm_s / cold_s:.2f}x"
    )
    print(f"  image size                      {image_mb:7.1f} MB  (base {base_mb:.1f} MB)")
    print(
        f"  cold start: process {process['cold_start_s']:.2f} s, container "
        f"{container['cold_start_s']:.2f} s "
        f"({container['cold_start_s'] / process['cold_start_s']:.2f}x)"
    )
    print(
        f"  throughput: process {process['rps']:.0f} req/s (p99 {process['p99_ms']:.1f} ms), "
        f"container {container['rps']:.0f} req/s (p99 {container['p99_ms']:.1f} ms): "
        f"{ratio:.2f}x (target >= {THROUGHPUT_TARGET:g}x)"
    )
    print(
        f"  verdict: warm build {'PASS' if warm_s < WARM_BUILD_TARGET_S else 'FAIL'}, "
        f"throughput {'PASS' if ratio >= THROUGHPUT_TARGET else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
