"""Reading SageMaker's own capture: which version each variant's record belongs to, how a
mirrored request's two records are keyed, SageMaker's time stamps, and CloudWatch's latency
datapoints as one summary."""

from __future__ import annotations

import math
from typing import Any

import pytest

from modelci.errors import ConfigError
from modelci.monitor.captured import inference_time, read_records
from modelci.monitor.sources import Timeline
from modelci.shadow.sagemaker_report import _choose, _latency, _side, match


def timeline() -> Timeline:
    # v1 from t=100, v2 from t=200.5; a shadow of c1 from 150 to 180, then c2 from 190 on
    return Timeline(
        live=[(100.0, "v1"), (200.5, "v2")],
        shadows=[(150.0, 180.0, "c1", 7), (190.0, math.inf, "c2", 9)],
    )


def test_a_record_belongs_to_what_its_variant_served_as_of_the_end_of_its_second() -> None:
    found = timeline()
    assert found.version("AllTraffic", 98.0) is None  # before the first deploy
    assert found.version("AllTraffic", 150.0) == "v1"
    assert found.version("AllTraffic", 199.0) == "v1"
    assert found.version("AllTraffic", 200.0) == "v2"  # stamped 200: answered in [200, 201)
    assert found.version("Shadow", 148.0) is None
    assert found.version("Shadow", 149.0) == "c1"
    assert found.version("Shadow", 179.5) is None
    assert found.version("Shadow", 10_000.0) == "c2"


def test_versions_of_an_hour_name_every_version_served_in_it() -> None:
    found = timeline()
    assert found.versions("AllTraffic", 0.0, 3600.0) == ["v1", "v2"]
    assert found.versions("AllTraffic", 300.0, 3600.0) == ["v2"]
    assert found.versions("Shadow", 0.0, 3600.0) == ["c1", "c2"]
    assert found.versions("Shadow", 181.0, 185.0) == []


def meta(event: str | None, inference: str | None = None) -> dict[str, Any]:
    return {"eventMetadata": {"eventId": event, "inferenceId": inference}}


def test_records_pair_by_event_id_then_by_an_inference_id_found_once_a_side() -> None:
    live = [
        (3.0, "v1", meta("e1")),
        (1.0, "v1", meta("e2", "i2")),  # the replica got another event id: i2 pairs it
        (2.0, "v1", meta("e3", "dup")),
        (4.0, "v1", meta("e4", "dup")),  # an inference id sent twice pairs nothing
        (5.0, "v1", meta("e5")),  # not mirrored
    ]
    mirrored = [
        meta("e1"),
        meta("x2", "i2"),
        meta("x3", "dup"),
        meta("x9"),  # no live partner
    ]
    pairs, unpaired_live, unpaired_shadow = match(live, mirrored)
    assert [(entry[2], shadow) for entry, shadow in pairs] == [
        (meta("e2", "i2"), meta("x2", "i2")),  # oldest first
        (meta("e1"), meta("e1")),
    ]
    assert (unpaired_live, unpaired_shadow) == (3, 2)
    assert match([], []) == ([], 0, 0)


def test_a_side_is_the_captured_answer() -> None:
    record = {
        "captureData": {
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": "eyJwcmVkaWN0aW9ucyI6IFsxXX0=",
                "encoding": "BASE64",
            }
        }
    }
    side = _side("v1", record)
    assert (side["version"], side["status"], side["body"]) == ("v1", 200, '{"predictions": [1]}')
    missing = _side("v1", {"captureData": {"endpointInput": {}}})
    assert missing["status"] is None and missing["error"] == "no answer captured"


def test_the_shadow_reported_is_the_one_asked_for() -> None:
    shadows = timeline().shadows
    assert _choose(shadows, 7, None, 9) == shadows[0]
    assert _choose(shadows, 8, None, 9) is None
    assert _choose(shadows, None, "c1", 9) == shadows[0]
    assert _choose(shadows, None, None, 9) == shadows[1]
    assert _choose(shadows, None, None, None) == shadows[1]  # the newest
    assert _choose([], None, None, None) is None


def test_sagemaker_stamps_to_the_second_or_the_millisecond() -> None:
    def stamp(text: str) -> dict[str, object]:
        return {"eventMetadata": {"inferenceTime": text}}

    assert inference_time(stamp("2026-12-03T01:02:03Z")) == 1796259723.0
    assert inference_time(stamp("2026-12-03T01:02:03.250Z")) == 1796259723.25
    with pytest.raises(ValueError):
        inference_time(stamp("2026-12-03T01:02:03.x5Z"))


def test_a_bad_line_in_a_sagemaker_file_names_the_file() -> None:
    class Files:
        def get_named(self, name: str) -> bytes:
            return b'{"eventMetadata": {"inferenceTime": "yesterday"}}\n'

    from modelci.monitor.captured import CaptureFile

    item = CaptureFile("capture/e/Shadow/2026/12/03/01/x.jsonl", "e", "Shadow", 0.0)
    with pytest.raises(ConfigError, match=r"capture/e/Shadow/2026/12/03/01/x.jsonl:1"):
        read_records(Files(), [item])  # type: ignore[arg-type]


def test_cloudwatch_datapoints_make_one_latency_in_ms() -> None:
    points = [
        {"Average": 2000.0, "Maximum": 5000.0, "SampleCount": 3.0},
        {"Average": 6000.0, "Maximum": 9000.0, "SampleCount": 1.0},
    ]
    percentiles = [
        {"ExtendedStatistics": {"p50": 2000.0, "p99": 5000.0}},
        {"ExtendedStatistics": {"p50": 4000.0, "p99": 8000.0}},
    ]
    assert _latency(points, percentiles) == {
        "p50": 3.0,
        "p99": 8.0,
        "mean": 3.0,
        "max": 9.0,
        "requests": 4,
    }
    assert _latency(points, [{}])["p99"] is None  # no percentiles where none are published
    assert _latency([], []) is None
