"""How a shadow's pairs are compared: class labels by the share that differ, numbers by a
relative tolerance and the relative error's quantiles; failed candidates disagree, failed live
answers are left out; a batch of pairs survives its JSON lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelci.errors import ConfigError
from modelci.shadow.pairs import Side, decode, encode, pair
from modelci.shadow.report import compare, predictions, quantile


def record(live: Any, candidate: Any, status: int | None = 200, live_status: int = 200) -> Any:
    body = b"" if candidate is None else json.dumps({"predictions": candidate}).encode()
    return pair(
        7,
        "toy",
        "staging",
        "toy-staging",
        Side("toy-1", live_status, 2.0, json.dumps({"predictions": live}).encode()),
        Side("toy-2", status, 3.0, body, error=None if status else "unreachable"),
    )


def test_class_labels_differ_by_share() -> None:
    pairs = [record(["a", "b"], ["a", "c"]), record(["a"], ["a"]), record([1], [1])]
    report = compare(pairs)
    assert report["kind"] == "classes" and report["relative_error"] is None
    assert (report["predictions"], report["differing"]) == (4, 1)
    assert report["disagreement"] == 0.25


def test_numbers_differ_beyond_a_relative_tolerance_with_quantiles() -> None:
    pairs = [record([2.0], [2.0]), record([2.0], [2.0 + 1e-12])]
    pairs += [record([1.5], [2.5]), record([4.0], [5.0])]
    report = compare(pairs)
    assert report["kind"] == "numbers" and report["differing"] == 2
    assert report["disagreement"] == 0.5
    errors = report["relative_error"]
    assert errors["max"] == pytest.approx(0.4) and 0 < errors["p50"] < 1e-9
    assert errors["p99"] == pytest.approx(0.4)
    assert report["latency_ms"]["live"]["p50"] == 2.0
    assert report["latency_ms"]["candidate"]["mean"] == 3.0


def test_a_failed_candidate_disagrees_and_a_failed_live_answer_is_left_out() -> None:
    pairs = [
        record([1.0, 2.0], None, status=None),  # candidate unreachable: both predictions
        record([1.0], [1.0, 2.0]),  # another shape
        record([1.0], [1.0], live_status=500),
        record([3.0], [3.0]),
    ]
    report = compare(pairs)
    assert report["pairs"] == 4 and report["skipped"] == 1
    assert report["candidate_errors"] == 2
    assert (report["predictions"], report["differing"]) == (4, 3)
    assert report["latency_ms"]["candidate"]["p50"] == 3.0  # the unreachable one not timed


def test_nothing_compared_says_so() -> None:
    report = compare([])
    assert report["disagreement"] is None and report["kind"] is None
    assert report["latency_ms"] == {"live": None, "candidate": None}


def test_answers_and_batches() -> None:
    assert predictions('{"predictions": [1, 2]}') == [1, 2]
    assert predictions("[3]") == [3] and predictions('"cat"') == ["cat"]
    assert predictions("not json") is None
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 and quantile([5.0], 0.99) == 5.0
    pairs = [record([1.0], [1.0]), record(["a"], ["b"])]
    back = decode(encode(pairs), "batch")
    assert back == pairs and back[0]["id"] != back[1]["id"]  # each pair its own event id
    assert back[0]["live"]["version"] == "toy-1" and back[0]["candidate"]["version"] == "toy-2"
    with pytest.raises(ConfigError, match="batch, line 2: not a shadow pair"):
        decode(encode(pairs[:1]) + b'{"other": 1}\n', "batch")
