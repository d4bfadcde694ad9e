"""Record a trained model's input signature, inside the model's own environment:
`python -m modelci.runtime.introspection --model-dir DIR [--handler FILE] [--channel PATH]
[--drop COLUMN ...] [--when-told]` writes `modelci-signature.json` into DIR and prints it.

The columns come from the fitted model (`n_features_in_` and `feature_names_in_` for
scikit-learn, `num_features()` and `feature_names` for XGBoost, the first input's shape for
ONNX). The training channel (its first CSV file) gives their names where the model has none and
the channel's other columns are the key and the label (`--drop`), and their types. Whether the
model takes NaN and Infinity in a column is asked of the model itself: one predict per column on
a row of training data (or zeros) holding one such value. Nothing is recorded for a model that
says nothing about its columns, nor when prediction is the user's own `predict_fn`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelci.runtime.signature import LABEL_COLUMNS, NUMBER, STRING, Column, Signature

SAMPLED_ROWS = 1000  # rows of the channel read to tell a column's type
PROBED_COLUMNS = 256  # beyond this many columns, NaN and Infinity are asked of all at once


def model_columns(model: Any) -> tuple[int | None, list[str] | None]:
    """(number of columns, their names) as the fitted model knows them."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = getattr(model, "feature_names", None)  # XGBoost's Booster
    count = getattr(model, "n_features_in_", None)
    if count is None and callable(getattr(model, "num_features", None)):
        with contextlib.suppress(Exception):
            count = int(model.num_features())
    if count is None and callable(getattr(model, "get_inputs", None)):  # ONNX session
        with contextlib.suppress(Exception):
            shape = model.get_inputs()[0].shape
            if len(shape) == 2 and isinstance(shape[1], int):
                count = shape[1]
    listed = [str(name) for name in names] if names is not None else None
    if listed is not None and count is None:
        count = len(listed)
    if count is None or (listed is not None and len(listed) != count):
        return (int(count) if count is not None else None), None
    return int(count), listed


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_channel(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """(header or None, up to SAMPLED_ROWS rows) of a channel's first CSV file."""
    files = [path] if path.is_file() else sorted(path.rglob("*.csv"))
    if not files or files[0].suffix.lower() not in (".csv", ".txt"):
        return None, []
    rows: list[list[str]] = []
    with files[0].open(newline="", errors="replace") as stream:
        for row in csv.reader(stream):
            if row:
                rows.append(row)
            if len(rows) > SAMPLED_ROWS:
                break
    if not rows:
        return None, []
    first = rows[0]
    header = None
    if not any(_number(cell) for cell in first) and (
        len(rows) == 1 or any(_number(cell) for cell in rows[1])
    ):
        header, rows = first, rows[1:]
    return header, [row for row in rows if len(row) == len(first)]


def column_types(rows: list[list[str]], indices: list[int]) -> list[str]:
    """`number` for a column whose non-empty cells all read as numbers, else `string`."""
    return [
        NUMBER if all(_number(row[i]) for row in rows if row[i].strip()) else STRING
        for i in indices
    ]


def _features_in_channel(
    header: list[str] | None, count: int, names: list[str] | None, drop: set[str]
) -> tuple[list[int] | None, list[str] | None]:
    """The channel's column of each feature, and the features' names, when they can be told."""
    if header is None:
        return None, names
    where = {name: i for i, name in enumerate(header)}
    if names is not None:
        if all(name in where for name in names):
            return [where[name] for name in names], names
        return None, names
    kept = [i for i, name in enumerate(header) if name not in drop]
    if len(kept) == count:
        return kept, [header[i] for i in kept]
    if len(header) == count:
        return list(range(count)), list(header)
    return None, None


def _accepts(predict: Callable[[Any], Any], row: np.ndarray) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predict(row)
    except Exception:
        return False
    return True


def _probe(
    predict: Callable[[Any], Any], base: np.ndarray, numeric: list[int]
) -> tuple[dict[int, bool], dict[int, bool]]:
    """Per numeric column: does the model take NaN there, and Infinity?"""
    if not _accepts(predict, base):
        return {}, {}
    found: list[dict[int, bool]] = []
    for value in (np.nan, np.inf):
        if len(numeric) > PROBED_COLUMNS:
            row = base.copy()
            row[0, numeric] = value
            taken = _accepts(predict, row)
            found.append(dict.fromkeys(numeric, taken))
            continue
        answers = {}
        for index in numeric:
            row = base.copy()
            row[0, index] = value
            answers[index] = _accepts(predict, row)
        found.append(answers)
    return found[0], found[1]


def signature_of(
    model: Any,
    predict: Callable[[Any], Any] | None,
    channel: Path | None = None,
    drop: Sequence[str] = (),
) -> Signature | None:
    """The signature of a fitted model (None when it says nothing about its columns);
    `predict` (the default predict, when the server uses it) is asked about NaN and Infinity."""
    count, names = model_columns(model)
    if count is None or count < 1:
        return None
    sources = ["model"]
    header, rows = read_channel(channel) if channel is not None else (None, [])
    indices, names = _features_in_channel(header, count, names, set(drop) | set(LABEL_COLUMNS))
    if indices is not None and rows:
        dtypes: list[str | None] = list(column_types(rows, indices))
        sources.append(f"channel {channel.name}" if channel is not None else "channel")
    elif rows and all(t == NUMBER for t in column_types(rows, list(range(len(rows[0]))))):
        dtypes = [NUMBER] * count  # a table of numbers only: whatever the features are, numbers
        sources.append(f"channel {channel.name}" if channel is not None else "channel")
    else:
        dtypes = [None] * count
    nan: dict[int, bool] = {}
    infinity: dict[int, bool] = {}
    if predict is not None:
        numeric = [i for i, dtype in enumerate(dtypes) if dtype != STRING]
        if len(numeric) == count:
            base = np.zeros((1, count), dtype=np.float64)
            if indices is not None and rows:
                with contextlib.suppress(ValueError):
                    base[0] = [float(rows[0][i] or "nan") for i in indices]
                if not np.isfinite(base).all():
                    base = np.zeros((1, count), dtype=np.float64)
        else:
            if indices is None or not rows:
                base = None
            else:
                base = np.array([[rows[0][i] for i in indices]], dtype=object)
                for i in numeric:
                    base[0, i] = float(base[0, i]) if _number(base[0, i]) else 0.0
        if base is not None:
            nan, infinity = _probe(predict, base, numeric)
            if nan:
                sources.append("probe")
    columns = [
        Column(
            name=names[i] if names is not None else None,
            dtype=dtypes[i],
            nan=nan.get(i),
            infinity=infinity.get(i),
        )
        for i in range(count)
    ]
    return Signature(columns, sources)


# (package, module): what the built-in handlers import to load a model of that package
PRELOADED = (("sklearn", "sklearn.base"), ("xgboost", "xgboost"), ("onnxruntime", "onnxruntime"))


def preload() -> None:
    """Import the model libraries the built-in handlers load (those installed), and the
    handlers: started beside the training job, this process has them when the model is done."""
    import importlib
    import importlib.util

    import modelci.runtime.handlers  # noqa: F401

    for package, module in PRELOADED:
        if importlib.util.find_spec(package) is not None:
            with contextlib.suppress(Exception):  # a broken library fails the load, later
                importlib.import_module(module)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modelci.runtime.introspection")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--handler", type=Path, help="the model's inference.py")
    parser.add_argument("--channel", type=Path, help="the training channel (file or folder)")
    parser.add_argument("--drop", action="append", default=[], help="a channel column to skip")
    parser.add_argument("--when-told", action="store_true", help="record on `record` from stdin")
    return parser


def record(argv: Sequence[str]) -> Signature | None:
    """Record the signature of the model in --model-dir (the arguments `main` takes) into that
    folder; None when the model says nothing of its columns."""
    return _record(_parser().parse_args(argv))


def _record(args: argparse.Namespace) -> Signature | None:
    from modelci.runtime.handlers import load_handler

    handler = load_handler(args.model_dir, args.handler, signature=False)
    predict = handler.default_predict if handler.batchable else None
    signature = signature_of(handler.model, predict, args.channel, args.drop)
    if signature is not None:
        signature.write(args.model_dir)
    return signature


def main(argv: Sequence[str] | None = None) -> int:
    """Record the signature of the model in --model-dir; 0 also when there is none to record.
    With --when-told: load the libraries first, then wait for the line `record` on standard
    input (anything else, or its end: exit 0, nothing recorded)."""
    args = _parser().parse_args(argv)
    if args.when_told:
        preload()
        if sys.stdin.readline().strip() != "record":
            return 0
    signature = _record(args)
    json.dump(None if signature is None else signature.to_dict(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
