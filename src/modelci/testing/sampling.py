"""Deterministic samples of CSV and Parquet channels.

A row is kept when a hash of its key (or, without a key, of its content) together with the
seed falls below the fraction: the same rows are chosen on every run and machine, whatever
the order of the rows, and a row's fate never depends on the other rows.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from modelci.errors import ConfigError
from modelci.loader import missing_extra

_SCALE = 2**64
FORMATS = (".csv", ".parquet")


@dataclass(frozen=True)
class SampleResult:
    """What a sample kept of one file."""

    source: Path
    destination: Path
    rows: int
    kept: int


def keeps(value: str, *, fraction: float, seed: int) -> bool:
    """Whether the row whose key (or content) is `value` belongs to the sample."""
    digest = hashlib.blake2b(f"{seed}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * _SCALE


def _sample_csv(
    source: Path, destination: Path, fraction: float, key: str | None, seed: int
) -> tuple[int, int]:
    rows = kept = 0
    with (
        source.open(newline="", encoding="utf-8") as src,
        destination.open("w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\n")
        header = next(reader, None)
        if header is None:
            return 0, 0
        writer.writerow(header)
        if key is not None and key not in header:
            raise ConfigError(
                f"{source.name} has no column {key!r} (columns: {', '.join(header)})",
                key="train.sample.key",
            )
        index = header.index(key) if key is not None else None
        for row in reader:
            rows += 1
            value = row[index] if index is not None and index < len(row) else "\x1f".join(row)
            if keeps(value, fraction=fraction, seed=seed):
                writer.writerow(row)
                kept += 1
    return rows, kept


def _sample_parquet(
    source: Path, destination: Path, fraction: float, key: str | None, seed: int
) -> tuple[int, int]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError as error:
        raise missing_extra(error, what=f"{source.name}: sampling Parquet") from None
    table = pq.read_table(source)
    if key is not None and key not in table.column_names:
        raise ConfigError(
            f"{source.name} has no column {key!r} (columns: {', '.join(table.column_names)})",
            key="train.sample.key",
        )
    if key is not None:
        values = [str(v) for v in table.column(key).to_pylist()]
    else:
        values = ["\x1f".join(str(v) for v in row.values()) for row in table.to_pylist()]
    mask = pa.array([keeps(v, fraction=fraction, seed=seed) for v in values])
    sampled = table.filter(mask)
    pq.write_table(sampled, destination)
    return table.num_rows, sampled.num_rows


def sample_file(
    source: Path, destination: Path, *, fraction: float, key: str | None, seed: int
) -> SampleResult:
    """Write the sample of one CSV or Parquet file (atomically: temp file, then rename)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}", key="train.sample")
    suffix = source.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{source}: only CSV and Parquet channels can be sampled")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    try:
        if suffix == ".csv":
            rows, kept = _sample_csv(source, temporary, fraction, key, seed)
        else:
            rows, kept = _sample_parquet(source, temporary, fraction, key, seed)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return SampleResult(source, destination, rows, kept)


def sample_channel(
    source: Path, destination: Path, *, fraction: float, key: str | None, seed: int
) -> list[SampleResult]:
    """Sample a channel, a file or a folder: CSV and Parquet files are sampled, other files
    of a folder are copied as they are. `destination` is a file for a file, else a folder."""
    if source.is_file():
        return [sample_file(source, destination, fraction=fraction, key=key, seed=seed)]
    results = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        target = destination / path.relative_to(source)
        if path.suffix.lower() in FORMATS:
            results.append(sample_file(path, target, fraction=fraction, key=key, seed=seed))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return results
