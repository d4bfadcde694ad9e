"""Benchmark the verification of an artifact before each use (`modelci.train.unpacked`).

Every server start, restart, `modelci test` and deploy of a version re-verifies its stored
archive and the unpacked copy it reads. This times that warm path (`materialize` on a copy
already cached: the archive re-hashed by the local store, the copy's tree hashed and compared
with its record) against, measured in the same run on the same bytes:

- a bare sha256 of the archive and of the tree's files (`hashlib.file_digest`): the floor;
- the cold path, which downloads (copies), verifies and unpacks the archive.

It prints milliseconds per MB of model (unpacked) and the ratios. Model data is random, so
the archive is about as large as the tree (gzip finds nothing to squeeze). It reports; it
does not gate: it exits 0 whatever the timings.

Run from the project root::

    .venv/bin/python bench/verify_bench.py [--mb 16 64] [--files 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modelci.store.local import LocalStore
from modelci.train.artifacts import pack
from modelci.train.unpacked import materialize, tree_digests


def best(runs: int, work: Callable[[], object]) -> float:
    """The median wall time of `runs` calls of `work` (after one warm-up)."""
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_model(folder: Path, megabytes: int, files: int) -> None:
    """One large weights file of `megabytes` MB and `files` small ones (4 KiB) beside it."""
    (folder / "parts").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(megabytes * 1024 * 1024))
    for index in range(files):
        (folder / "parts" / f"{index:04d}.json").write_bytes(os.urandom(4096))


def bare_hash(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as stream:
            hashlib.file_digest(stream, "sha256")


def one_size(scratch: Path, megabytes: int, files: int, runs: int) -> None:
    model = scratch / f"model-{megabytes}"
    make_model(model, megabytes, files)
    store = LocalStore(scratch / "store")
    sha256 = store.put_file(pack(model, scratch / f"model-{megabytes}.tar.gz")).sha256
    cache = scratch / "cache"
    folder = materialize(store, sha256, cache)
    tree_files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    size_mb = sum(p.stat().st_size for p in tree_files) / 1024 / 1024

    def cold() -> None:
        shutil.rmtree(cache)
        materialize(store, sha256, cache)

    floor = best(runs, lambda: bare_hash([store.path_for(sha256), *tree_files]))
    warm = best(runs, lambda: materialize(store, sha256, cache, version="bench"))
    tree_only = best(runs, lambda: tree_digests(folder))
    unpack = best(runs, cold)
    print(f"model: {size_mb:.1f} MB in {len(tree_files)} files")
    print(f"  bare sha256 of archive + files   {floor * 1000:8.1f} ms")
    print(
        f"  verified use (warm materialize)  {warm * 1000:8.1f} ms  "
        f"{warm * 1000 / size_mb:6.2f} ms/MB  {warm / floor:5.2f}x the bare hash"
    )
    print(f"  of which the tree                {tree_only * 1000:8.1f} ms")
    print(
        f"  cold unpack (verify + extract)   {unpack * 1000:8.1f} ms  "
        f"verified use = {warm / unpack:5.2f}x a cold unpack"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as scratch:
        for megabytes in options.mb:
            one_size(Path(scratch), megabytes, options.files, options.runs)


if __name__ == "__main__":
    main()
