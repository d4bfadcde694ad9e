"""`modelci shadow` on the `sagemaker` deploy backend: SageMaker replicates the requests to the
shadow variant itself (modelci.deploy.sagemaker_shadow) and its data capture writes each
variant's records apart, `capture/<endpoint>/AllTraffic/...` and `capture/<endpoint>/Shadow/...`
in the bucket. A mirrored request's two records are paired by their `eventMetadata.eventId`,
then, among the records left, by the `inferenceId` a client sent with InvokeEndpoint, which
SageMaker adds to the captured data (its documentation does not say whether the replica keeps
the production record's event id: a client that sends an inference id pairs either way). Each
pair becomes the host's pair record (modelci.shadow.pairs) and is compared as the host's are
(modelci.shadow.report). Capture records carry no latency: each variant's comes from
SageMaker's own CloudWatch metrics (`ModelLatency`, in microseconds, per `EndpointName` and
`VariantName`) over the shadow's time, with its `Invocation5XXErrors` and
`InvocationModelErrors`."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError
from modelci.monitor.captured import capture_files, inference_time, payload
from modelci.monitor.sources import (
    PRODUCTION_VARIANT,
    SHADOW_VARIANT,
    STAMP_S,
    SageMakerCapture,
    sagemaker_source,
)
from modelci.shadow.report import compare

if TYPE_CHECKING:
    from modelci.registry.base import Registry
    from modelci.workspace import Workspace

Session = tuple[float, float, str, int]  # start, end, candidate version, start event id
ERROR_METRICS = ("Invocation5XXErrors", "InvocationModelErrors")


def summarize_sagemaker(
    workspace: Workspace,
    registry: Registry,
    model: str,
    environment: str,
    *,
    session: int | None,
    version: str | None,
    limit: int,
) -> dict[str, Any]:
    """The same document as modelci.shadow.summary.summarize, from SageMaker's capture."""
    source = sagemaker_source(workspace, model, environment)
    active = {s.environment: s for s in registry.shadows(model)}.get(environment)
    chosen = _choose(source.timeline.shadows, session, version, active.event if active else None)
    if session is not None and chosen is None:
        known = ", ".join(str(s[3]) for s in source.timeline.shadows) or "none"
        raise ConfigError(
            f"no shadow {session} of {model!r} in {environment} (shadows: {known})",
            key="--session",
        )
    running = active is not None and chosen is not None and active.event == chosen[3]
    none: dict[str, int] = {"live": 0, "candidate": 0}
    pairs, unpaired = _pairs(source, chosen, limit) if chosen else ([], none)
    document: dict[str, Any] = {
        "model": model,
        "environment": environment,
        "endpoint": source.endpoint,
        "session": chosen[3] if chosen else None,
        "running": running,
        "version": chosen[2] if chosen else None,
        "percent": active.percent if running and active else None,
        "dropped": 0,
        "batches": 0,
        "source": "sagemaker",
        "unpaired": unpaired,
        **compare(pairs),
    }
    if chosen is not None:
        document["latency_ms"], document["invocation_errors"] = _metrics(
            workspace, source.endpoint, chosen
        )
    return document


def _choose(
    shadows: list[Session], session: int | None, version: str | None, active: int | None
) -> Session | None:
    """The shadow asked for: by id, else the newest of `version`, else the running one, else
    the newest."""
    newest_first = sorted(shadows, key=lambda s: s[0], reverse=True)
    if session is not None:
        return next((s for s in newest_first if s[3] == session), None)
    if version is not None:
        return next((s for s in newest_first if s[2] == version), None)
    if active is not None:
        found = next((s for s in newest_first if s[3] == active), None)
        if found is not None:
            return found
    return newest_first[0] if newest_first else None


def _ids(record: dict[str, Any]) -> tuple[str | None, str | None]:
    metadata = record.get("eventMetadata") or {}
    return metadata.get("eventId") or None, metadata.get("inferenceId") or None


Live = tuple[float, str, dict[str, Any]]  # inference time, version served, record


def match(
    live: list[Live], mirrored: list[dict[str, Any]]
) -> tuple[list[tuple[Live, dict[str, Any]]], int, int]:
    """Pair each live record with the shadow variant's record of the same request: by
    `eventId`, then, among those left, by an `inferenceId` found once on each side. The pairs
    (oldest first), and how many live and shadow records found no partner."""
    by_event = {e: r for r in mirrored if (e := _ids(r)[0]) is not None}
    pairs: list[tuple[Live, dict[str, Any]]] = []
    left_live: list[Live] = []
    used: set[int] = set()
    for entry in live:
        found = by_event.get(_ids(entry[2])[0] or "")
        if found is not None and id(found) not in used:
            pairs.append((entry, found))
            used.add(id(found))
        else:
            left_live.append(entry)
    left = [r for r in mirrored if id(r) not in used]
    once = _unique(_ids(r)[1] for r in left)
    by_inference = {i: r for r in left if (i := _ids(r)[1]) in once}
    unique_live = _unique(_ids(entry[2])[1] for entry in left_live)
    unmatched = 0
    for entry in left_live:
        inference = _ids(entry[2])[1]
        found = by_inference.pop(inference, None) if inference in unique_live else None
        if found is None:
            unmatched += 1
        else:
            pairs.append((entry, found))
            used.add(id(found))
    pairs.sort(key=lambda pair: pair[0][0])
    return pairs, unmatched, len(mirrored) - len(used)


def _unique(values: Iterable[str | None]) -> set[str]:
    seen: dict[str, int] = {}
    for value in values:
        if value is not None:
            seen[value] = seen.get(value, 0) + 1
    return {value for value, count in seen.items() if count == 1}


def _side(version: str, record: dict[str, Any]) -> dict[str, Any]:
    """One side of a pair, as modelci.shadow.pairs.Side.to_json writes it: data capture keeps
    only answered requests (a success), and no latency."""
    output = record["captureData"].get("endpointOutput") or {}
    return {
        "version": version,
        "status": 200 if output else None,
        "latency_ms": None,
        "content_type": output.get("observedContentType"),
        "body": payload(output).decode("utf-8", errors="replace") if output else "",
        "truncated": False,
        "error": None if output else "no answer captured",
    }


def _pairs(
    source: SageMakerCapture, chosen: Session, limit: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The session's pairs (the newest `limit`), and how many records of each side found no
    partner (requests not mirrored, or a side not captured)."""
    start, end, candidate, event = chosen
    files = capture_files(source.store, source.endpoint, None, start)
    live: list[Live] = []
    mirrored: list[dict[str, Any]] = []
    for variant, record in source.variant_records(files, None, start - STAMP_S):
        at = inference_time(record)
        if at + STAMP_S < start or at >= end:
            continue
        if variant == SHADOW_VARIANT:
            mirrored.append(record)
        elif variant == PRODUCTION_VARIANT:
            served = source.timeline.version(variant, at)
            if served is not None:
                live.append((at, served, record))
    matched, unpaired_live, unpaired_candidate = match(live, mirrored)
    pairs = [
        {
            "id": _ids(record)[0] or _ids(record)[1],
            "shadow": event,
            "time": at,
            "live": _side(served, record),
            "candidate": _side(candidate, shadow),
        }
        for (at, served, record), shadow in matched[-limit:]
    ]
    return pairs, {"live": unpaired_live, "candidate": unpaired_candidate}


def _metrics(
    workspace: Workspace, endpoint: str, chosen: Session
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each variant's latency (ms: p50 and p99 where CloudWatch gives them, the mean, the
    maximum, the count) and invocation errors over the shadow's time, from CloudWatch."""
    from modelci.aws import SageMakerAccount

    start, end, _, _ = chosen
    now = time.time()
    finish = min(end, now + 60)
    span = finish - start + 120
    # one datapoint over the whole shadow; CloudWatch keeps one-minute points for 15 days,
    # then asks for periods of 5 minutes or an hour
    unit = 60 if now - start < 14 * 86400 else 3600
    window = {
        "StartTime": datetime.fromtimestamp(start - 60, UTC),
        "EndTime": datetime.fromtimestamp(finish + 60, UTC),
        "Period": max(unit, math.ceil(span / unit) * unit),
    }
    account = SageMakerAccount.open(workspace.project.sagemaker, need_bucket=False)
    latency: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    with account.call("cloudwatch", f"reading the metrics of {endpoint}") as api:
        for side, variant in (("live", PRODUCTION_VARIANT), ("candidate", SHADOW_VARIANT)):
            asked = {
                "Namespace": "AWS/SageMaker",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": variant},
                ],
                **window,
            }
            points = api.get_metric_statistics(
                MetricName="ModelLatency",
                Statistics=["Average", "Maximum", "SampleCount"],
                **asked,
            )["Datapoints"]
            percentiles = api.get_metric_statistics(
                MetricName="ModelLatency", ExtendedStatistics=["p50", "p99"], **asked
            )["Datapoints"]
            latency[side] = _latency(points, percentiles)
            errors[side] = {
                metric: sum(
                    float(p.get("Sum") or 0)
                    for p in api.get_metric_statistics(
                        MetricName=metric, Statistics=["Sum"], **asked
                    )["Datapoints"]
                )
                for metric in ERROR_METRICS
            }
    return latency, errors


def _latency(points: list[dict[str, Any]], percentiles: list[dict[str, Any]]) -> Any:
    """CloudWatch's datapoints (microseconds) as one summary in ms: the mean weighted by each
    point's count, the maximum, and p50/p99 (of the one point a shadow's window usually is;
    over several, the count-weighted p50 and the largest p99)."""
    count = sum(float(p.get("SampleCount") or 0) for p in points)
    if not count:
        return None
    mean = sum(float(p["Average"]) * float(p["SampleCount"]) for p in points) / count
    extended = [p.get("ExtendedStatistics") or {} for p in percentiles]
    p50s = [float(e["p50"]) for e in extended if "p50" in e]
    p99s = [float(e["p99"]) for e in extended if "p99" in e]
    return {
        "p50": sum(p50s) / len(p50s) / 1000 if p50s else None,
        "p99": max(p99s) / 1000 if p99s else None,
        "mean": mean / 1000,
        "max": max(float(p["Maximum"]) for p in points) / 1000,
        "requests": int(count),
    }
