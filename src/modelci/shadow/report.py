"""How a shadow's candidate compares with the live version over its recorded pairs: for
class labels (strings, booleans, integers) the share of predictions that differ, for numbers
the share that differ beyond a relative tolerance and the relative error's quantiles; and both
sides' latency. A pair whose live answer was not a success is left out (nothing to compare
with); a candidate that failed where the live version answered disagrees on every
prediction."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 1e-9  # relative: numbers closer than this agree
QUANTILES = (0.5, 0.9, 0.99)


def predictions(body: str) -> list[Any] | None:
    """The predictions of an answer: the list under `predictions` (SageMaker's and modelci's
    JSON), a bare list, or one value; None for an answer that is not JSON."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict) and "predictions" in document:
        document = document["predictions"]
    return list(document) if isinstance(document, list) else [document]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key])]
    return [value]


def relative_error(live: float, candidate: float) -> float:
    scale = max(abs(live), abs(candidate))
    return 0.0 if scale == 0 else abs(candidate - live) / scale


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile of sorted `values` (nearest rank)."""
    rank = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return values[rank]


@dataclass
class Comparison:
    """The running tally over pairs."""

    pairs: int = 0
    skipped: int = 0  # the live answer was not a success
    candidate_errors: int = 0  # the candidate failed (or answered another shape)
    compared: int = 0  # predictions compared
    differing: int = 0
    labels: int = 0  # predictions compared as class labels
    errors: list[float] = field(default_factory=list)  # relative errors of numbers
    live_ms: list[float] = field(default_factory=list)
    candidate_ms: list[float] = field(default_factory=list)
    live_versions: set[str] = field(default_factory=set)

    def add(self, pair: dict[str, Any]) -> None:
        self.pairs += 1
        live, candidate = pair["live"], pair["candidate"]
        if not isinstance(live.get("status"), int) or not 200 <= live["status"] < 300:
            self.skipped += 1
            return
        self.live_versions.add(str(live.get("version")))
        self.live_ms.append(float(live.get("latency_ms") or 0))
        if candidate.get("status") is not None:
            self.candidate_ms.append(float(candidate.get("latency_ms") or 0))
        expected = predictions(str(live.get("body", "")))
        if expected is None:
            self.skipped += 1
            return
        leaves = _leaves(expected)
        got = (
            predictions(str(candidate.get("body", "")))
            if candidate.get("status") is not None and 200 <= candidate["status"] < 300
            else None
        )
        answered = _leaves(got) if got is not None else None
        if answered is None or len(answered) != len(leaves):
            self.candidate_errors += 1
            self.compared += len(leaves)
            self.differing += len(leaves)
            return
        for want, have in zip(leaves, answered, strict=True):
            self.compared += 1
            if isinstance(want, float) and isinstance(have, int | float):
                error = relative_error(want, float(have))
                self.errors.append(error)
                self.differing += error > TOLERANCE
            else:
                self.labels += 1
                self.differing += want != have

    def summary(self) -> dict[str, Any]:
        numbers = len(self.errors)
        kind = (
            None
            if not self.compared
            else "numbers"
            if numbers and not self.labels
            else "classes"
            if self.labels and not numbers
            else "mixed"
            if numbers and self.labels
            else None
        )
        errors = sorted(self.errors)
        return {
            "pairs": self.pairs,
            "skipped": self.skipped,
            "candidate_errors": self.candidate_errors,
            "predictions": self.compared,
            "differing": self.differing,
            "kind": kind,
            "disagreement": self.differing / self.compared if self.compared else None,
            "relative_error": (
                {
                    **{f"p{round(q * 100)}": quantile(errors, q) for q in QUANTILES},
                    "max": errors[-1],
                }
                if errors
                else None
            ),
            "latency_ms": {
                "live": latency(self.live_ms),
                "candidate": latency(self.candidate_ms),
            },
            "live_versions": sorted(self.live_versions),
        }


def latency(values: Iterable[float]) -> dict[str, float] | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return {
        "p50": quantile(ordered, 0.5),
        "p99": quantile(ordered, 0.99),
        "mean": sum(ordered) / len(ordered),
    }


def compare(pairs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The comparison of a shadow's pairs (see the module's text)."""
    tally = Comparison()
    for item in pairs:
        tally.add(item)
    return tally.summary()
