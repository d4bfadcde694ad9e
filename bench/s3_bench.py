"""Benchmark the S3 store against boto3's own transfers, on the AWS API emulator.

Target (from the issue): a put and a get of a 200 MB artifact through `S3Store` take at most
1.2x what `aws s3 cp` does both ways, i.e. boto3's `upload_file` + `download_file` with the
default transfer settings, on the same emulator and bucket (different keys).

The store does more than the bare copy: it hashes the file before the upload, asks whether the
key exists (write once), checks the bucket once, and hashes the download before renaming it
into place. Each run uses a new store; objects are deleted after every run, as the emulator
keeps them in memory, and the emulator is reset between transfers (every run starts on the
same empty emulator, not one still freeing the last 200 MB). The median of `--runs` runs (3
by default) of each is compared. The benchmark reports; it exits 0 whatever the timings, and
1 only when something fails.

Run from the project root::

    .venv/bin/python bench/s3_bench.py [--size-mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.support, shared with the test suite

from tests.support.servers import running_moto  # noqa: E402

TARGET = 1.2
BUCKET = "modelci-bench"


def write_random(path: Path, size: int) -> None:
    """`size` random bytes, written in 8 MiB pieces."""
    piece = 8 * 1024 * 1024
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(os.urandom(min(piece, left)))
            left -= piece


def fresh_bucket(client: Any, url: str) -> None:
    """Reset the emulator (dropping every object it holds in memory) and make the bucket."""
    import httpx

    httpx.post(f"{url}/moto-api/reset").raise_for_status()
    client.create_bucket(Bucket=BUCKET)


def baseline_run(client: Any, source: Path, out: Path) -> tuple[float, float]:
    """boto3's upload_file and download_file, as `aws s3 cp` does them."""
    key = "baseline/model.tar.gz"
    started = time.perf_counter()
    client.upload_file(str(source), BUCKET, key)
    put = time.perf_counter() - started
    started = time.perf_counter()
    client.download_file(BUCKET, key, str(out))
    get = time.perf_counter() - started
    client.delete_object(Bucket=BUCKET, Key=key)
    out.unlink()
    return put, get


def store_run(client: Any, source: Path, out: Path) -> tuple[float, float]:
    """S3Store.put_file and get_file (hashing, write-once check, verified read)."""
    from modelci.store.s3 import S3Store

    store = S3Store(f"s3://{BUCKET}/store")
    store.client  # noqa: B018 -- made outside the timing, as the baseline's client is
    started = time.perf_counter()
    stored = store.put_file(source)
    put = time.perf_counter() - started
    started = time.perf_counter()
    store.get_file(stored.sha256, out)
    get = time.perf_counter() - started
    client.delete_object(Bucket=BUCKET, Key=store.key_for(stored.sha256))
    out.unlink()
    return put, get


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with running_moto() as url, tempfile.TemporaryDirectory(prefix="s3-bench-") as scratch:
        # the emulator, with dummy credentials: nothing leaves 127.0.0.1
        for variable in [v for v in os.environ if v.startswith("AWS_")]:
            del os.environ[variable]
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": url,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        import boto3

        client = boto3.client("s3")
        fresh_bucket(client, url)
        source = Path(scratch) / "model.tar.gz"
        write_random(source, args.size_mb * 1024 * 1024)
        out = Path(scratch) / "out" / "model.tar.gz"
        out.parent.mkdir()
        print(f"{args.size_mb} MB random file, moto_server at {url}, {args.runs} runs each")

        baseline: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        baseline_run(client, source, out)  # warm-up: the emulator's first big request
        for run in range(args.runs):
            # alternate the order so neither side always runs on a warmer emulator
            sides = [(baseline, baseline_run), (ours, store_run)]
            for results, side in sides if run % 2 == 0 else sides[::-1]:
                fresh_bucket(client, url)
                results.append(side(client, source, out))
            print(
                f"  run {run + 1}: boto3 put {baseline[-1][0]:.2f} s get "
                f"{baseline[-1][1]:.2f} s | S3Store put {ours[-1][0]:.2f} s get "
                f"{ours[-1][1]:.2f} s"
            )

    def median(rows: list[tuple[float, float]], index: int | None) -> float:
        return statistics.median(sum(r) if index is None else r[index] for r in rows)

    for label, index in (("put", 0), ("get", 1), ("put + get", None)):
        b, s = median(baseline, index), median(ours, index)
        print(f"{label:>9}: boto3 {b:6.2f} s   S3Store {s:6.2f} s   ratio {s / b:.2f}x")
    ratio = median(ours, None) / median(baseline, None)
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(
        f"{verdict}: put + get through S3Store is {ratio:.2f}x boto3's upload_file + "
        f"download_file (target <= {TARGET}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
