"""Content types the default handler reads and writes: JSON, CSV and NPY.

Requests follow SageMaker's containers: a JSON body is `{"instances": [...]}`, `{"inputs": ...}`
or a bare list (one flat list of values is one row); a CSV body is rows of numbers without a
header; an NPY body is one array (a 1-D array is one row). Every decoder returns a NumPy array
with at least two dimensions, rows first. Answers are `{"predictions": [...]}` in JSON, one line
per row in CSV, or an NPY array, chosen by the Accept header (`*/*` or none means JSON).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from modelci.runtime.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from modelci.runtime.limits import MAX_JSON_DEPTH

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
MEDIA_TYPES = (JSON, CSV, NPY)
_WILDCARDS = {"*/*": JSON, "application/*": JSON, "text/*": CSV}
# JSON strings, whose brackets do not nest; and each byte's step in nesting depth
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_DEPTH_STEP = np.zeros(256, dtype=np.int8)
_DEPTH_STEP[[ord("["), ord("{")]] = 1
_DEPTH_STEP[[ord("]"), ord("}")]] = -1


@functools.lru_cache(maxsize=256)
def media_type(header: str | None) -> str:
    """The bare, lower-case media type of a Content-Type header; none means JSON."""
    if not header:
        return JSON
    return header.partition(";")[0].strip().lower() or JSON


@functools.lru_cache(maxsize=256)
def choose_accept(header: str | None) -> str:
    """The media type to answer in for an Accept header, honouring q-values and wildcards.

    Raises `NotAcceptable` when none of the listed types is JSON, CSV or NPY.
    """
    if not header:
        return JSON
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        media, _, parameters = part.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, media.strip().lower()))
    for _, _, media in sorted(ranked):
        if media in MEDIA_TYPES:
            return media
        if media in _WILDCARDS:
            return _WILDCARDS[media]
    raise NotAcceptable(f"cannot answer in {header!r}: accepted types are {', '.join(MEDIA_TYPES)}")


def rows_to_array(rows: Any) -> np.ndarray:
    """A list of rows (or one flat row) as a 2-D array: floats where possible, else strings."""
    if not isinstance(rows, list):
        raise BadRequest(f"expected a list of rows, got {type(rows).__name__}")
    if not rows:
        raise BadRequest("no rows: the list of instances is empty")
    try:
        array = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError):
        array = _mixed_rows(rows)
    if array.ndim == 1:
        return array.reshape(1, -1)
    return array


def _mixed_rows(rows: list[Any]) -> np.ndarray:
    """Rows that are not all numbers: strings are kept, anything else is refused."""
    try:
        array = np.asarray(rows)
    except ValueError as error:
        raise BadRequest(f"rows must all have the same length: {error}") from None
    if array.dtype.kind not in "biufUS":
        raise BadRequest("each row must be a list of numbers or strings")
    return array


def json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep the JSON text nests arrays and objects, or any number up to `limit` when it
    cannot be deeper (the usual case, told by counting brackets)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return 0
    if b'"' in body:
        body = _JSON_STRING.sub(b'""', body)
    steps = _DEPTH_STEP[np.frombuffer(body, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def decode_json(body: bytes) -> np.ndarray:
    """`{"instances": rows}`, `{"inputs": rows}` or a bare list of rows (or one flat row)."""
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(
            f"JSON nested {depth} levels deep: the limit is {MAX_JSON_DEPTH} (rows need 3)"
        )
    try:
        document = json.loads(body)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise BadRequest(f"body is not valid JSON: {error}") from None
    except RecursionError:  # a depth the count above missed cannot crash the server
        raise BadRequest(f"JSON nested deeper than the limit of {MAX_JSON_DEPTH}") from None
    if isinstance(document, dict):
        if "instances" in document:
            document = document["instances"]
        elif "inputs" in document:
            document = document["inputs"]
        else:
            raise BadRequest('a JSON object body needs an "instances" or "inputs" key')
    return rows_to_array(document)


def decode_csv(body: bytes) -> np.ndarray:
    """Rows of numbers, comma-separated, no header."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"CSV body is not UTF-8: {error}") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        raise BadRequest("no rows: the CSV body is empty")
    try:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    except ValueError as error:
        raise BadRequest(_csv_problem(rows) or f"CSV rows must be numbers: {error}") from None


def _csv_problem(rows: list[list[str]]) -> str | None:
    """What is wrong with CSV rows that are not a table of numbers: the first cell at fault."""
    width = len(rows[0])
    for number, row in enumerate(rows):
        if len(row) != width:
            return (
                f"CSV rows must hold the same number of numbers: row {number} holds "
                f"{len(row)}, row 0 holds {width}"
            )
        for column, cell in enumerate(row):
            try:
                float(cell)
            except ValueError:
                return f"CSV row {number}, column {column}: expected a number, got {cell!r}"
    return None


def _check_npy_header(body: bytes) -> None:
    """The header's shape and type must fit in the body: NumPy allocates what the header
    declares before it reads the data."""
    if not body.startswith(b"\x93NUMPY"):
        return  # not .npy (an .npz archive, garbage): np.load says what it is
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            return  # np.load says what is wrong with it
    except (ValueError, EOFError, OSError) as error:
        raise BadRequest(f"body is not a .npy array: {error}") from None
    if dtype.hasobject:
        raise BadRequest("the .npy array holds Python objects: only plain numbers and strings")
    declared = math.prod(shape) * dtype.itemsize
    held = len(body) - stream.tell()
    if declared > held:
        raise BadRequest(
            f"the .npy header declares {declared} bytes of data (shape {list(shape)}, "
            f"{dtype}), but the body holds {held}"
        )


def decode_npy(body: bytes) -> np.ndarray:
    """One array in NumPy's .npy format (no pickles); a 1-D array is one row."""
    _check_npy_header(body)
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise BadRequest(f"body is not a .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise BadRequest("body is an .npz archive, expected one .npy array")
    if array.ndim == 0:
        raise BadRequest("expected an array of rows, got a scalar")
    if array.ndim == 1:
        return array.reshape(1, -1)
    return array


DECODERS: dict[str, Callable[[bytes], np.ndarray]] = {
    JSON: decode_json,
    CSV: decode_csv,
    NPY: decode_npy,
}


def decode(body: bytes, content_type: str) -> np.ndarray:
    """Decode a request body by its (bare) media type; 415 for an unknown one."""
    decoder = DECODERS.get(content_type)
    if decoder is None:
        raise UnsupportedMediaType(
            f"cannot read {content_type!r}: supported types are {', '.join(MEDIA_TYPES)}"
        )
    return decoder(body)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(prediction: Any) -> bytes:
    """`{"predictions": [...]}`."""
    if isinstance(prediction, np.ndarray):
        prediction = prediction.tolist()
    return json.dumps(
        {"predictions": prediction}, default=_json_default, separators=(",", ":")
    ).encode()


def encode_csv(prediction: Any) -> bytes:
    """One line per row; a row of several values is comma-separated."""
    rows = prediction.tolist() if isinstance(prediction, np.ndarray) else prediction
    if not isinstance(rows, list):
        rows = [rows]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        if isinstance(row, np.ndarray):
            row = row.tolist()
        writer.writerow(row if isinstance(row, list | tuple) else [row])
    return out.getvalue().encode()


def encode_npy(prediction: Any) -> bytes:
    """The prediction as one .npy array."""
    out = io.BytesIO()
    try:
        np.save(out, np.asarray(prediction), allow_pickle=False)
    except ValueError as error:
        raise TypeError(f"prediction cannot be written as .npy: {error}") from None
    return out.getvalue()


ENCODERS: dict[str, Callable[[Any], bytes]] = {
    JSON: encode_json,
    CSV: encode_csv,
    NPY: encode_npy,
}


def encode(prediction: Any, accept: str) -> bytes:
    """Encode a prediction in a media type chosen by `choose_accept`."""
    return ENCODERS[accept](prediction)
