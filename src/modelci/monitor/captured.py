"""Reading what the endpoint host captured (`modelci.serve.capture`): the files of an endpoint
in the store, their records since a moment, and the rows a record's request carried."""

from __future__ import annotations

import base64
import calendar
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError

if TYPE_CHECKING:
    from modelci.store.base import Store

PREFIX = "capture"  # as modelci.serve.capture writes
_FILE = re.compile(
    r"capture/(?P<endpoint>[^/]+)/(?P<version>[^/]+)/"
    r"(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/(?P<h>\d\d)/[^/]+\.jsonl"
)
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ISO = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class CaptureFile:
    """One capture file: its name in the store, and the hour (UTC) its records fall in."""

    name: str
    endpoint: str
    version: str
    hour: float  # seconds since the epoch at the start of that hour

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "hour": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(self.hour)),
        }


def parse_since(text: str, now: float | None = None) -> float:
    """`--since`: a duration back from now (`30m`, `2h`, `7d`) or a UTC time
    (`2026-12-03T01:00:00Z`, `2026-12-03`); seconds since the epoch."""
    now = time.time() if now is None else now
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    for layout in _ISO:
        try:
            return float(calendar.timegm(time.strptime(text.strip(), layout)))
        except ValueError:
            continue
    raise ConfigError(
        f"--since {text!r}: expected a duration such as 30m, 2h or 7d, or a UTC time such as "
        "2026-12-03T01:00:00Z",
        key="since",
    )


def capture_files(
    store: Store, endpoint: str, version: str | None = None, since: float | None = None
) -> list[CaptureFile]:
    """The endpoint's capture files (of one version, when given) whose hour ends after
    `since`, oldest first."""
    found = []
    for name in store.list_named(f"{PREFIX}/{endpoint}"):
        match = _FILE.fullmatch(name)
        if match is None or (version is not None and match["version"] != version):
            continue
        hour = calendar.timegm(
            (int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]), 0, 0, 0, 0, 0)
        )
        if since is not None and hour + 3600 <= since:
            continue
        found.append(CaptureFile(name, match["endpoint"], match["version"], float(hour)))
    return sorted(found, key=lambda f: (f.hour, f.name))


def inference_time(record: dict[str, Any]) -> float:
    """A record's `eventMetadata.inferenceTime`, in seconds since the epoch (SageMaker stamps
    to the second, `2026-12-03T01:02:03Z`, or to the millisecond, `...03.456Z`)."""
    stamp = str(record["eventMetadata"]["inferenceTime"])
    whole, dot, fraction = stamp.removesuffix("Z").partition(".")
    seconds = float(calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")))
    return seconds + (float("0." + fraction) if dot else 0.0)


def read_records(
    store: Store, files: list[CaptureFile], since: float | None = None
) -> list[dict[str, Any]]:
    """The records of `files` from `since` on, in order; a line that is not a capture record
    is a ConfigError naming the file."""
    records: list[tuple[float, dict[str, Any]]] = []
    for capture in files:
        for number, line in enumerate(store.get_named(capture.name).splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                at = inference_time(record)
            except (ValueError, KeyError, TypeError) as error:
                raise ConfigError(
                    f"{capture.name}:{number}: not a data-capture record: {error}"
                ) from None
            if since is None or at >= since:
                records.append((at, record))
    records.sort(key=lambda pair: pair[0])  # files of one hour hold interleaved times
    return [record for _, record in records]


def payload(part: dict[str, Any]) -> bytes:
    """The bytes of an `endpointInput` or `endpointOutput`."""
    data = str(part.get("data", ""))
    if part.get("encoding") == "BASE64":
        return base64.b64decode(data)
    return data.encode("utf-8")


def input_rows(record: dict[str, Any]) -> list[list[Any]]:
    """The rows a record's request carried, decoded as the server decodes them; a request
    that cannot be read gives none."""
    from modelci.runtime.codecs import decode, media_type
    from modelci.runtime.errors import ServeError

    part = record["captureData"]["endpointInput"]
    try:
        array = decode(payload(part), media_type(part.get("observedContentType")))
    except (ServeError, ValueError):
        return []
    rows: list[list[Any]] = array.tolist()
    return rows


def fetch_files(store: Store, files: list[CaptureFile], folder: Path) -> list[Path]:
    """Copy `files` under `folder`, at their names in the store; the paths written."""
    written = []
    for capture in files:
        target = folder / capture.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get_named(capture.name))
        written.append(target)
    return written
