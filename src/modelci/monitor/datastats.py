"""A version's training-data statistics, made at training time from the job's channels (CSV
and Parquet files) and kept in the store as one JSON document named in the version's
`details["data_statistics"]`. Per column: its type, completeness, range, quantiles and, for a
small reference, the values themselves (Kolmogorov-Smirnov needs them), or its categories.
`modelci drift` compares captured requests with them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from modelci.spec import ModelSpec
    from modelci.store.base import Store

SMALL = 1000  # up to this many rows, a reference keeps its values (KS, chi-squared)
QUANTILES = 201
MAX_CATEGORIES = 100
CATEGORICAL_UNIQUE = 5  # a numeric column with this few distinct values is categorical
OTHER = "__other__"
FORMAT = 1


def category_key(value: Any, numeric: bool) -> str:
    """The one spelling of a category: numbers as floats (`1`, `1.0` and `"1"` are one)."""
    if numeric:
        return repr(float(value))
    return str(value)


def _as_numbers(values: list[Any]) -> np.ndarray | None:
    """The values as floats, or None when one does not read as a number."""
    try:
        return np.array([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        return None


def column_statistics(values: list[Any]) -> dict[str, Any]:
    """The statistics of one column's values (None or "" is missing)."""
    present = [v for v in values if v is not None and v != ""]
    numbers = _as_numbers(present)
    if numbers is not None:
        numbers = numbers[np.isfinite(numbers)]
    stats: dict[str, Any] = {
        "type": "number" if numbers is not None else "string",
        "count": len(values),
        "missing": len(values) - len(present),
        "completeness": len(present) / len(values) if values else 0.0,
    }
    if numbers is not None and len(numbers):
        distinct = np.unique(numbers)
        stats |= {
            "min": float(numbers.min()),
            "max": float(numbers.max()),
            "mean": float(numbers.mean()),
            "std": float(numbers.std()),
            "distinct": len(distinct),
            "quantiles": np.quantile(numbers, np.linspace(0, 1, QUANTILES)).tolist(),
        }
        if len(numbers) <= SMALL:
            stats["values"] = numbers.tolist()
    categorical = numbers is None or len(np.unique(numbers)) <= CATEGORICAL_UNIQUE
    stats["kind"] = "categorical" if categorical else "numerical"
    if categorical:
        counts: dict[str, int] = {}
        for value in present:
            key = category_key(value, numbers is not None)
            counts[key] = counts.get(key, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = dict(ranked[:MAX_CATEGORIES])
        rest = sum(count for _, count in ranked[MAX_CATEGORIES:])
        stats["categories"] = kept | ({OTHER: rest} if rest else {})
    return stats


def _read_csv(path: Path) -> tuple[list[str], list[list[Any]]]:
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader, [])
        rows = list(reader)
    return header, [[row[i] if i < len(row) else None for row in rows] for i in range(len(header))]


def _read_parquet(path: Path) -> tuple[list[str], list[list[Any]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return list(table.column_names), [table.column(n).to_pylist() for n in table.column_names]


def channel_statistics(folder: Path) -> dict[str, Any] | None:
    """The statistics of a channel's CSV and Parquet files (their columns joined by name), or
    None when it has none (or Parquet without pyarrow)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".csv", ".parquet"))
    columns: dict[str, list[Any]] = {}
    rows = 0
    for path in files:
        if path.suffix == ".parquet":
            try:
                header, values = _read_parquet(path)
            except ModuleNotFoundError:
                continue
        else:
            header, values = _read_csv(path)
        count = len(values[0]) if values else 0
        for name, column in zip(header, values, strict=True):
            columns.setdefault(name, [None] * rows).extend(column)
        rows += count
        for column in columns.values():  # a column this file lacks is missing in its rows
            column.extend([None] * (rows - len(column)))
    if not columns:
        return None
    return {
        "rows": rows,
        "order": list(columns),
        "columns": {name: column_statistics(values) for name, values in columns.items()},
    }


def data_statistics(channels: dict[str, Path], request_columns: list[str]) -> dict[str, Any]:
    """Every channel's statistics, and the columns a request's row carries, in order."""
    found = {name: channel_statistics(path) for name, path in channels.items() if path.exists()}
    return {
        "format": FORMAT,
        "channels": {name: stats for name, stats in found.items() if stats is not None},
        "request_columns": request_columns,
    }


def store_statistics(store: Store, spec: ModelSpec, input_data: Path) -> dict[str, Any] | None:
    """Make and store the statistics of a job's channels (`input_data/<channel>/`); the
    `details["data_statistics"]` entry naming them, or None when no channel holds a table."""
    channels = {name: input_data / name for name in spec.train.channels}
    document = data_statistics(channels, list(spec.file.serve.capture.columns))
    if not document["channels"]:
        return None
    if not document["request_columns"]:  # as the smoke request: key and label left out
        from modelci.runtime.signature import LABEL_COLUMNS

        found = document["channels"]
        reference = found["train"] if "train" in found else found[sorted(found)[0]]
        key = spec.train.sample.key if spec.train.sample else None
        left_out = {*LABEL_COLUMNS, key}
        document["request_columns"] = [c for c in reference["order"] if c not in left_out]
    text = json.dumps(document, sort_keys=True, allow_nan=False)
    stored = store.put_bytes(text.encode("utf-8"))
    return {"sha256": stored.sha256, "channels": sorted(document["channels"])}


def load_statistics(store: Store, entry: dict[str, Any]) -> dict[str, Any]:
    """The statistics document a `details["data_statistics"]` entry names, verified."""
    document: dict[str, Any] = json.loads(store.get_bytes(str(entry["sha256"])))
    return document
