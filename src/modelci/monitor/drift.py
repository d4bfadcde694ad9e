"""Drift (`modelci drift`): the requests an endpoint captured, compared column by column with
the training data's statistics of the version it serves.

Each column gets the test Evidently picks: on a reference of up to 1,000 rows, Kolmogorov-Smirnov
for a numerical column and chi-squared for a categorical one (drift at p < 0.05); above, the
Wasserstein distance normed by the reference's deviation and the Jensen-Shannon distance (drift
at >= 0.1). As SageMaker's Model Monitor does, a column the requests lack, an extra one, or
values of another type are violations too. The dataset drifts when the share of drifted columns
reaches the threshold (Evidently's drift share, 0.5 by default)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelci.errors import ConfigError
from modelci.monitor import stattests
from modelci.monitor.captured import input_rows
from modelci.monitor.datastats import SMALL, category_key, load_statistics
from modelci.monitor.sources import capture_source

if TYPE_CHECKING:
    from modelci.workspace import Workspace

THRESHOLD = 0.5


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict."""

    column: str
    test: str  # ks | chi_squared | wasserstein | jensen_shannon | missing | extra | type
    score: float | None
    threshold: float | None
    drifted: bool
    rows: int = 0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "test": self.test,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "rows": self.rows,
            "note": self.note,
        }


@dataclass
class DriftReport:
    """What `modelci drift` found for one endpoint's version."""

    model: str
    environment: str
    endpoint: str
    version: str
    channel: str
    threshold: float
    records: int = 0
    rows: int = 0
    columns: list[ColumnDrift] = field(default_factory=list)

    @property
    def share(self) -> float:
        """The share of the columns compared that drifted."""
        return sum(c.drifted for c in self.columns) / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        """Whether the dataset drifted: the drifted share reaches the threshold."""
        return any(c.drifted for c in self.columns) and self.share >= self.threshold

    @property
    def passed(self) -> bool:
        """No drift, on some captured rows (nothing captured decides nothing)."""
        return self.rows > 0 and not self.drifted

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "environment": self.environment,
            "endpoint": self.endpoint,
            "version": self.version,
            "channel": self.channel,
            "records": self.records,
            "rows": self.rows,
            "share": self.share,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "passed": self.passed,
            "columns": [c.to_json() for c in self.columns],
        }


def column_drift(name: str, reference: dict[str, Any], values: list[Any]) -> ColumnDrift:
    """One column's test, chosen by the reference's size and kind."""
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return ColumnDrift(name, "missing", None, None, True, len(values), "no value captured")
    numeric = reference["type"] == "number"
    if numeric:
        try:
            numbers = np.array([float(v) for v in present], dtype=float)
        except (TypeError, ValueError):
            return ColumnDrift(
                name, "type", None, None, True, len(values), "numbers in training, not here"
            )
    if reference["kind"] == "categorical":
        current: dict[str, float] = {}
        for value in present:
            key = category_key(value, numeric)
            current[key] = current.get(key, 0) + 1
        expected = {k: float(v) for k, v in reference.get("categories", {}).items()}
        if reference["count"] - reference["missing"] <= SMALL:
            p = stattests.chi_squared_test(expected, current)
            return ColumnDrift(
                name, "chi_squared", p, stattests.P_VALUE, p < stattests.P_VALUE, len(values)
            )
        distance = stattests.jensen_shannon(expected, current)
        drifted = distance >= stattests.DISTANCE
        return ColumnDrift(
            name, "jensen_shannon", distance, stattests.DISTANCE, drifted, len(values)
        )
    numbers = numbers[np.isfinite(numbers)]
    if "values" in reference:
        p = stattests.ks_test(np.array(reference["values"], dtype=float), numbers)
        return ColumnDrift(name, "ks", p, stattests.P_VALUE, p < stattests.P_VALUE, len(values))
    distance = stattests.wasserstein_normed(
        np.array(reference["quantiles"], dtype=float), numbers, float(reference["std"])
    )
    return ColumnDrift(
        name,
        "wasserstein",
        distance if math.isfinite(distance) else None,
        stattests.DISTANCE,
        distance >= stattests.DISTANCE,
        len(values),
    )


def compare(channel: dict[str, Any], names: list[str], rows: list[list[Any]]) -> list[ColumnDrift]:
    """Every column's verdict: the named ones (a row's values, in order), then those beyond."""
    widest = max((len(row) for row in rows), default=0)
    verdicts = []
    for index, name in enumerate(names):
        reference = channel["columns"].get(name)
        if reference is None:
            verdicts.append(ColumnDrift(name, "missing", None, None, True, note="not in training"))
            continue
        if index >= widest:
            note = "no request has it"
            verdicts.append(ColumnDrift(name, "missing", None, None, True, note=note))
            continue
        values = [row[index] if index < len(row) else None for row in rows]
        verdicts.append(column_drift(name, reference, values))
    for index in range(len(names), widest):
        count = sum(len(row) > index for row in rows)
        note = "beyond the training columns"
        verdicts.append(ColumnDrift(f"#{index}", "extra", None, None, True, count, note))
    return verdicts


def request_columns(document: dict[str, Any], channel: dict[str, Any]) -> list[str]:
    """The training columns a request's row carries, in order, as recorded at training time
    (`[serve.capture] columns`, else the columns but the label and the sample key); rows of
    another width show as missing or extra columns."""
    return list(document.get("request_columns") or channel["order"])


def drift_report(
    workspace: Workspace,
    model: str,
    environment: str,
    *,
    since: float | None = None,
    threshold: float = THRESHOLD,
    version: str | None = None,
) -> DriftReport:
    """Compare what `environment`'s endpoint of `model` captured (of the version it serves,
    or `version`) since `since` with that version's training-data statistics."""
    if environment not in workspace.environments:
        known = ", ".join(workspace.environments)
        raise ConfigError(f"unknown environment {environment!r} (environments: {known})")
    endpoint = workspace.endpoint(model, environment)
    with workspace.registry() as registry:
        if version is None:
            pointer = registry.get_pointer(model, environment)
            if pointer is None:
                raise ConfigError(f"{model} is not deployed to {environment}: nothing to compare")
            version = pointer.version
        record = registry.get_version(version)
    if record is None:
        raise ConfigError(f"no version {version!r} in the registry")
    entry = record.details.get("data_statistics")
    if not entry:
        raise ConfigError(
            f"version {version} has no training-data statistics (trained by a modelci without "
            "them, or from channels with no CSV or Parquet file): train it again to record them"
        )
    store = workspace.store()
    document = load_statistics(store, entry)
    channels: dict[str, Any] = document["channels"]
    channel_name = "train" if "train" in channels else sorted(channels)[0]
    report = DriftReport(model, environment, endpoint, version, channel_name, threshold)
    source = capture_source(workspace, model, environment)  # the host's, or SageMaker's
    records = source.records(source.files(version, since), version, since)
    rows = [row for record in records for row in input_rows(record)]
    report.records, report.rows = len(records), len(rows)
    if rows:
        channel = channels[channel_name]
        names = request_columns(document, channel)
        report.columns = compare(channel, names, rows)
    return report
