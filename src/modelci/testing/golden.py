"""Golden outputs: fixed inputs with expected outputs, in `golden.jsonl`, one row a line:
`{"input": ..., "output": ..., "content_type": optional, "accept": optional}`."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError

JSON = "application/json"
CSV = "text/csv"


@dataclass(frozen=True)
class GoldenRow:
    """One golden row, with the line it came from."""

    line: int
    input: Any
    output: Any
    content_type: str = JSON
    accept: str = JSON


def read_golden(path: Path, shown: str) -> list[GoldenRow]:
    """Parse a golden file; a bad line names the file and the line."""
    rows: list[GoldenRow] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=shown, key="tests.golden") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"line {number}: not JSON: {exc}", file=shown) from None
        if not isinstance(data, dict) or "input" not in data or "output" not in data:
            raise ConfigError(
                f'line {number}: expected an object with "input" and "output"', file=shown
            )
        unknown = set(data) - {"input", "output", "content_type", "accept"}
        if unknown:
            raise ConfigError(
                f"line {number}: unknown key(s) {', '.join(sorted(unknown))}", file=shown
            )
        rows.append(
            GoldenRow(
                number,
                data["input"],
                data["output"],
                str(data.get("content_type") or JSON),
                str(data.get("accept") or JSON),
            )
        )
    return rows


def encode_input(value: Any, content_type: str) -> bytes:
    """A golden input as the request body of its content type."""
    if content_type == CSV and not isinstance(value, str):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            value if value and isinstance(value[0], list) else [value]
        )
        return buffer.getvalue().encode()
    if isinstance(value, str) and content_type != JSON:
        return value.encode()
    return json.dumps(value).encode()


def request(row: GoldenRow) -> dict[str, Any]:
    """The probe request for a golden row."""
    return {
        "body_b64": base64.b64encode(encode_input(row.input, row.content_type)).decode(),
        "content_type": row.content_type,
        "accept": row.accept,
    }


def decode_answer(answer: dict[str, Any]) -> Any:
    """The answer body as data: JSON parsed, CSV as rows of numbers where they parse."""
    body = base64.b64decode(answer["body_b64"]).decode(errors="replace")
    media = (answer.get("content_type") or "").partition(";")[0].strip()
    if media == JSON:
        return json.loads(body)
    if media == CSV:
        return [[_number(cell) for cell in row] for row in csv.reader(io.StringIO(body))]
    return body


def _number(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell


def difference(expected: Any, actual: Any, tolerance: float, where: str = "") -> str | None:
    """Where `actual` first differs from `expected` (numbers within `tolerance`), or None."""
    here = where or "output"
    if isinstance(expected, bool) or isinstance(actual, bool):
        return None if expected == actual else f"{here}: expected {expected!r}, got {actual!r}"
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if math.isclose(expected, actual, rel_tol=tolerance, abs_tol=tolerance):
            return None
        return f"{here}: expected {expected!r}, got {actual!r} (tolerance {tolerance:g})"
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{here}: expected {len(expected)} items, got {len(actual)}"
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = difference(e, a, tolerance, f"{here}[{index}]")
            if found:
                return found
        return None
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return f"{here}: expected keys {sorted(expected)}, got {sorted(actual)}"
        for key in expected:
            found = difference(expected[key], actual[key], tolerance, f"{here}.{key}")
            if found:
                return found
        return None
    return None if expected == actual else f"{here}: expected {expected!r}, got {actual!r}"
