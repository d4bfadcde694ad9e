"""Data capture's pieces without a host: SageMaker's record format, the batched files in a
real folder store, dropping (and counting) under pressure, and reading the files back."""

from __future__ import annotations

import asyncio
import base64
import calendar
import json
import re
from pathlib import Path

import pytest

from modelci.errors import ArtifactNotFound, ConfigError
from modelci.monitor.captured import (
    capture_files,
    input_rows,
    parse_since,
    read_records,
)
from modelci.serve.capture import Capture, Sampled, record_line, write_batch
from modelci.serve.proxy import Answer
from modelci.serve.workers import LaunchSpec
from modelci.store.local import LocalStore

FILE = re.compile(r"capture/ep/ep-v1/\d{4}/\d\d/\d\d/\d\d/[0-9a-f]{32}\.jsonl")


def spec(percent: float) -> LaunchSpec:
    return LaunchSpec(
        endpoint="ep",
        model="m",
        environment="staging",
        version="ep-v1",
        commit="c" * 40,
        python="",
        runtime="",
        model_dir="",
        artifact_sha256="0" * 64,
        root="",
        handler=None,
        workers=1,
        batch_max_size=1,
        batch_max_wait_ms=0,
        log_dir="",
        capture_percent=percent,
    )


def answer(status: int = 200) -> Answer:
    return Answer(status, b'{"predictions": [3.5]}', "application/json", ())


def sampled(body: bytes, content_type: str, at: float = 1_764_720_000.0) -> Sampled:
    return Sampled("ep", "ep-v1", at, body, content_type, b"3.5\n", "text/csv")


def test_a_record_has_sagemakers_fields_and_encodings() -> None:
    record = json.loads(record_line(sampled(b'{"instances": [[1, 2]]}', "application/json")))
    assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": '{"instances": [[1, 2]]}',
        "encoding": "JSON",
    }
    assert record["captureData"]["endpointOutput"] == {
        "observedContentType": "text/csv",
        "mode": "OUTPUT",
        "data": "3.5\n",
        "encoding": "CSV",
    }
    assert re.fullmatch(r"[0-9a-f-]{36}", record["eventMetadata"]["eventId"])
    assert record["eventMetadata"]["inferenceTime"] == "2025-12-03T00:00:00Z"
    assert record["eventVersion"] == "0"
    # NumPy bodies, and text that is no UTF-8, are base64
    npy = json.loads(record_line(sampled(b"\x93NUMPY\x01", "application/x-npy")))
    part = npy["captureData"]["endpointInput"]
    assert part["encoding"] == "BASE64" and base64.b64decode(part["data"]) == b"\x93NUMPY\x01"
    bad = json.loads(record_line(sampled(b"\xff\xfe", "application/json")))
    assert bad["captureData"]["endpointInput"]["encoding"] == "BASE64"


def test_batches_are_files_per_hour_read_back_in_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    hour = 1_764_720_000.0
    records = [
        sampled(b"[[1, 2]]", "application/json", hour + 10),
        sampled(b"3,4\n", "text/csv", hour + 20),
        sampled(b"[[5, 6]]", "application/json", hour + 3600 + 5),
    ]
    assert write_batch(store, records) == 2
    files = capture_files(store, "ep")
    assert [f.hour for f in files] == [hour, hour + 3600]
    assert all(FILE.fullmatch(f.name) for f in files)
    assert (tmp_path / "store" / files[0].name).is_file()
    rows = [input_rows(r) for r in read_records(store, files)]
    assert rows == [[[1.0, 2.0]], [[3.0, 4.0]], [[5.0, 6.0]]]
    # --since leaves out the files of earlier hours and the earlier records of its hour
    assert [f.hour for f in capture_files(store, "ep", since=hour + 3600)] == [hour + 3600]
    assert len(read_records(store, files, since=hour + 15)) == 2
    assert capture_files(store, "ep", version="other") == []


def test_sampling_follows_the_percent_and_only_successes() -> None:
    capture = Capture(lambda: LocalStore(Path("/nonexistent")))
    draws = iter([0.1, 0.3, 0.05, 0.9])
    capture.random = lambda: next(draws)
    for _ in range(4):
        capture.offer(spec(20), b"[[1, 2]]", "application/json", answer())
    assert capture.counts["captured"] == 2  # the draws under 0.2
    capture.offer(spec(100), b"[[1, 2]]", "application/json", answer(400))
    capture.offer(spec(0), b"[[1, 2]]", "application/json", answer())
    assert capture.counts["captured"] == 2 and len(capture.pending) == 2


def test_a_full_buffer_drops_and_counts() -> None:
    capture = Capture(lambda: LocalStore(Path("/nonexistent")), max_pending=3)
    for _ in range(5):
        capture.offer(spec(100), b"[[1, 2]]", None, answer())
    assert capture.counts["captured"] == 3 and capture.counts["dropped"] == 2
    assert len(capture.pending) == 3


class BrokenStore(LocalStore):
    def put_named(self, name: str, data: bytes) -> str:
        raise OSError("disk full")


def test_a_failing_store_drops_the_batch_and_says_so(tmp_path: Path) -> None:
    capture = Capture(lambda: BrokenStore(tmp_path))
    for _ in range(3):
        capture.offer(spec(100), b"[[1, 2]]", "application/json", answer())
    asyncio.run(capture.flush())
    described = capture.describe()
    assert described["dropped"] == 3 and described["written"] == 0
    assert described["pending"] == 0 and "disk full" in described["last_error"]


def test_a_flush_writes_the_pending_records(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    capture = Capture(lambda: store)
    capture.offer(spec(100), b"[[1, 2]]", "application/json", answer())
    asyncio.run(capture.flush())
    assert capture.describe()["written"] == 1 and capture.describe()["files"] == 1
    [record] = read_records(store, capture_files(store, "ep"))
    assert record["captureData"]["endpointOutput"]["data"] == '{"predictions": [3.5]}'


def test_named_files_refuse_paths_out_of_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for name in ("../escape", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(ConfigError):
            store.put_named(name, b"x")
    assert store.list_named("capture/none") == []
    with pytest.raises(ArtifactNotFound):
        store.get_named("capture/none/x.jsonl")


def test_since_reads_durations_and_times() -> None:
    now = 1_000_000.0
    assert parse_since("30m", now) == now - 1800
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1d", now) == now - 86400
    assert parse_since("2026-12-03T01:00:00Z") == calendar.timegm((2026, 12, 3, 1, 0, 0))
    assert parse_since("2026-12-03") == calendar.timegm((2026, 12, 3, 0, 0, 0))
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday")
