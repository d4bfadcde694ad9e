"""Gate expressions over a version's metrics: `">= 0.85"`, `"< 0.3"`, `"between 0.1 0.2"`."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelci.testing.report import CheckResult

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


# Judged at promotion on a shadow's record (modelci.shadow.summary), not on training metrics.
SHADOW_GATE = "shadow_disagreement"


@dataclass(frozen=True)
class Gate:
    """One parsed gate: `op` is a comparison or `between` (inclusive on both ends)."""

    metric: str
    op: str
    bounds: tuple[float, ...]

    def holds(self, value: float) -> bool:
        """Whether a metric's value passes the gate."""
        if self.op == "between":
            low, high = self.bounds
            return low <= value <= high
        return _OPERATORS[self.op](value, self.bounds[0])

    def __str__(self) -> str:
        return f"{self.op} {' '.join(f'{b:g}' for b in self.bounds)}"


class _Malformed(ValueError):
    pass


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Malformed(f"{text!r} is not a number") from None
    if math.isnan(value):
        raise _Malformed("NaN is not a bound")
    return value


def parse_gate(expression: str, *, metric: str) -> Gate:
    """Parse a gate expression; a malformed one raises ValueError saying what is expected,
    as `<metric>: malformed gate '<expression>': <why>`."""
    try:
        return _parse(expression, metric)
    except _Malformed as exc:
        raise ValueError(f"{metric}: malformed gate {expression!r}: {exc}") from None


def _parse(expression: str, metric: str) -> Gate:
    words = expression.split()
    if len(words) == 3 and words[0] == "between":
        low, high = _number(words[1]), _number(words[2])
        if low > high:
            raise _Malformed("the low bound is above the high bound")
        return Gate(metric, "between", (low, high))
    if len(words) == 1:  # ">=0.85" written without a space
        for symbol in sorted(_OPERATORS, key=len, reverse=True):
            if words[0].startswith(symbol):
                words = [symbol, words[0][len(symbol) :]]
                break
    if len(words) == 2 and words[0] in _OPERATORS:
        return Gate(metric, words[0], (_number(words[1]),))
    raise _Malformed(
        'expected "<op> <number>" with <op> one of >= <= > < == != or "between <low> <high>"'
    )


def check_gates(
    gates: Mapping[str, object],
    metrics: Mapping[str, float],
    production: Mapping[str, float] | None,
    production_version: str | None,
) -> list[CheckResult]:
    """Every gate of a spec over a version's metrics.

    A gate on a metric the version lacks fails, naming the metric. `no_regression` compares
    with the production version's metric, and is skipped with a note when there is none."""
    results: list[CheckResult] = []
    for metric, expression in gates.items():
        if metric in ("no_regression", SHADOW_GATE, "drift"):  # the last two: when it moves on
            continue
        gate = parse_gate(str(expression), metric=metric)
        if metric not in metrics:
            known = ", ".join(sorted(metrics)) or "none"
            results.append(
                CheckResult(
                    metric,
                    "gate",
                    False,
                    str(gate),
                    None,
                    f"the version has no metric {metric!r} (its metrics: {known})",
                )
            )
            continue
        value = metrics[metric]
        held = gate.holds(value)
        results.append(
            CheckResult(
                metric,
                "gate",
                held,
                str(gate),
                value,
                "" if held else f"{metric} = {value:g}, expected {gate}",
            )
        )
    rule = gates.get("no_regression")
    if rule is not None:
        metric = str(getattr(rule, "metric", ""))
        max_drop = float(getattr(rule, "max_drop", 0.0))
        name = f"no_regression:{metric}"
        if production is None:
            results.append(
                CheckResult(
                    name,
                    "no_regression",
                    True,
                    message="skipped: nothing is in production yet",
                    skipped=True,
                )
            )
        elif metric not in production or metric not in metrics:
            side = "production version" if metric not in production else "version"
            results.append(
                CheckResult(
                    name, "no_regression", False, message=f"the {side} has no metric {metric!r}"
                )
            )
        else:
            floor = production[metric] - max_drop
            held = metrics[metric] >= floor
            results.append(
                CheckResult(
                    name,
                    "no_regression",
                    held,
                    f">= {floor:g}",
                    metrics[metric],
                    f"{metric} {metrics[metric]:g} against {production[metric]:g} in production "
                    f"({production_version}), max drop {max_drop:g}",
                )
            )
    return results
