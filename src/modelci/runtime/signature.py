"""A model version's input signature: how many columns a row has, their names where known,
their types, and whether the model takes NaN and Infinity in each; and the check of a decoded
request against it.

It is recorded at training (`modelci.runtime.introspection`) into the model folder, so that it
travels with the artifact to every place the version is served, and is published in
`/metadata` and `/openapi.json`. A request that does not fit is a `BadRequest` (400) saying what
was expected and what came.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelci.runtime.errors import BadRequest

SIGNATURE_FILE = "modelci-signature.json"
NUMBER = "number"
STRING = "string"
DTYPES = (NUMBER, STRING)
# Columns of a training channel that are the answer, not an input.
LABEL_COLUMNS = ("label", "target", "y", "class")
_SHOWN_NAMES = 6


@dataclass(frozen=True)
class Column:
    """One input column: its name and type when known; whether the model takes NaN and
    ±Infinity there (None: not known, not checked)."""

    name: str | None = None
    dtype: str | None = None
    nan: bool | None = None
    infinity: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "nan": self.nan, "infinity": self.infinity}


class Signature:
    """The columns a model version's `predict` takes, rows first (a 2-D array)."""

    def __init__(self, columns: list[Column], sources: list[str]):
        self.columns = tuple(columns)
        self.sources = tuple(sources)
        self.count = len(self.columns)
        self.numeric = [i for i, c in enumerate(self.columns) if c.dtype == NUMBER]
        self.all_numeric = len(self.numeric) == self.count
        self.no_nan = [i for i, c in enumerate(self.columns) if c.nan is False]
        self.no_infinity = [i for i, c in enumerate(self.columns) if c.infinity is False]
        everywhere = len(self.no_nan) == self.count and len(self.no_infinity) == self.count
        self.finite_everywhere = everywhere

    # --- reading and writing ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The signature as recorded and published."""
        return {
            "columns": [column.to_dict() for column in self.columns],
            "sources": list(self.sources),
        }

    @classmethod
    def from_dict(cls, document: Any, where: str = "signature") -> Signature:
        """Read a recorded signature; ValueError naming the field at fault."""
        if not isinstance(document, dict) or not isinstance(document.get("columns"), list):
            raise ValueError(f"{where}: expected an object with a list of columns")
        columns = []
        for index, entry in enumerate(document["columns"]):
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: columns[{index}]: expected an object")
            name, dtype = entry.get("name"), entry.get("dtype")
            if name is not None and not isinstance(name, str):
                raise ValueError(f"{where}: columns[{index}].name: expected a string or null")
            if dtype is not None and dtype not in DTYPES:
                raise ValueError(f"{where}: columns[{index}].dtype: expected one of {DTYPES}")
            flags = {key: entry.get(key) for key in ("nan", "infinity")}
            for key, value in flags.items():
                if value is not None and not isinstance(value, bool):
                    raise ValueError(f"{where}: columns[{index}].{key}: expected true, false, null")
            columns.append(Column(name, dtype, flags["nan"], flags["infinity"]))
        sources = document.get("sources") or []
        return cls(columns, [str(source) for source in sources])

    def write(self, model_dir: Path) -> Path:
        """Record the signature in a model folder (packed with the artifact)."""
        path = model_dir / SIGNATURE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        return path

    # --- the check of a request ---------------------------------------------------------

    def describe(self) -> str:
        """`3 columns (a, b, c)`, for messages."""
        names = [column.name for column in self.columns if column.name is not None]
        text = f"{self.count} column{'s' if self.count != 1 else ''}"
        if len(names) == self.count and names:
            shown = ", ".join(names[:_SHOWN_NAMES])
            text += f" ({shown}{', ...' if len(names) > _SHOWN_NAMES else ''})"
        return text

    def label(self, index: int) -> str:
        """`column 2 ('age')`."""
        name = self.columns[index].name
        return f"column {index}" + (f" ({name!r})" if name is not None else "")

    def check(self, array: np.ndarray) -> np.ndarray:
        """`array` as the model takes it (numeric strings read as numbers), or a BadRequest
        naming what was expected and what came."""
        if array.ndim != 2:
            raise BadRequest(
                f"expected rows of {self.describe()} (a 2-D array of rows), got an array of "
                f"{array.ndim} dimensions, shape {list(array.shape)}"
            )
        if array.shape[1] != self.count:
            raise BadRequest(
                f"expected rows of {self.describe()}, got rows of {array.shape[1]} "
                f"value{'s' if array.shape[1] != 1 else ''}"
            )
        kind = array.dtype.kind
        if kind in "US":
            array = self._read_numbers(array)
            kind = array.dtype.kind
        elif kind not in "biuf":
            raise BadRequest(
                f"expected rows of {self.describe()}, got values of type {array.dtype}"
            )
        if kind == "f" and (self.no_nan or self.no_infinity):
            self._check_finite(array)
        return array

    def _read_numbers(self, array: np.ndarray) -> np.ndarray:
        """Strings in numeric columns must read as numbers: all-numeric rows become floats."""
        for index in self.numeric:
            try:
                array[:, index].astype(np.float64)
            except ValueError:
                for row, value in enumerate(array[:, index].tolist()):
                    try:
                        float(value)
                    except ValueError:
                        raise BadRequest(
                            f"row {row}, {self.label(index)}: expected a number, got the string "
                            f"{value!r}"
                        ) from None
        if self.numeric and self.all_numeric:
            converted: np.ndarray = array.astype(np.float64)
            return converted
        return array

    def _check_finite(self, array: np.ndarray) -> None:
        if self.finite_everywhere:
            if np.isfinite(array).all():
                return
            bad = ~np.isfinite(array)
        else:
            bad = np.zeros(array.shape, dtype=bool)
            if self.no_nan:
                bad[:, self.no_nan] |= np.isnan(array[:, self.no_nan])
            if self.no_infinity:
                bad[:, self.no_infinity] |= np.isinf(array[:, self.no_infinity])
            if not bad.any():
                return
        row, index = (int(i) for i in np.argwhere(bad)[0])
        value = float(array[row, index])
        shown = "NaN (or null)" if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        raise BadRequest(
            f"row {row}, {self.label(index)}: expected a finite number, got {shown}: this model "
            "cannot take NaN or Infinity there"
        )

    # --- publishing ---------------------------------------------------------------------

    def row_schema(self) -> dict[str, Any]:
        """The JSON schema of one row."""
        items = []
        for column in self.columns:
            item: dict[str, Any] = {}
            if column.dtype == NUMBER:
                item["type"] = "number"
            elif column.dtype == STRING:
                item["type"] = "string"
            if column.name is not None:
                item["title"] = column.name
            items.append(item)
        return {
            "type": "array",
            "minItems": self.count,
            "maxItems": self.count,
            "prefixItems": items,
        }


def read_signature(model_dir: Path) -> Signature | None:
    """The signature recorded in a model folder, or None when it has none (trained before
    signatures were recorded); ValueError when the file is not a signature."""
    path = model_dir / SIGNATURE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path}: not JSON: {error}") from None
    return Signature.from_dict(document, str(path))
