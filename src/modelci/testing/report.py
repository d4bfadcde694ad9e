"""The results of `modelci test`: one check each, and JUnit XML for CI to show."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """One check: `kind` is reproducibility, golden, gate or no_regression."""

    name: str
    kind: str
    passed: bool
    expected: Any = None
    actual: Any = None
    message: str = ""
    skipped: bool = False
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("duration_s")
        return data


@dataclass
class TestReport:
    """Every check of one version."""

    model: str
    version: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed or c.skipped for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
        }


def test_result(details: dict[str, Any]) -> str:
    """What a version's recorded tests say (its `details`): passed, failed or not tested."""
    tests = details.get("tests")
    if not isinstance(tests, dict):
        return "not tested"
    return "passed" if tests.get("passed") else "failed"


def failure_causes(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed checks among `checks` (as `CheckResult.to_json` gives them, or as the
    registry keeps them), each with its cause: name, expected, actual and message."""
    return [
        {key: check.get(key) for key in ("name", "expected", "actual", "message")}
        for check in checks
        if not check.get("passed") and not check.get("skipped")
    ]


def describe_failure(failure: dict[str, Any]) -> str:
    """One failed check in a line: `score: expected >= 0.9, got 0.75: ...`."""
    text = str(failure.get("name"))
    expected, actual = failure.get("expected"), failure.get("actual")
    if expected is not None or actual is not None:
        text += f": expected {_short(expected)}, got {_short(actual)}"
    message = " ".join(str(failure.get("message") or "").split("\n"))
    return f"{text}: {message}" if message else text


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_junit(reports: list[TestReport], path: Path) -> Path:
    """JUnit XML, as CircleCI's store_test_results and GitHub's test reporters read it."""
    suites = ET.Element("testsuites", name="modelci")
    for report in reports:
        failures = sum(1 for c in report.checks if not c.passed and not c.skipped)
        skipped = sum(1 for c in report.checks if c.skipped)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=report.version,
            tests=str(len(report.checks)),
            failures=str(failures),
            skipped=str(skipped),
            errors="0",
            time=f"{sum(c.duration_s for c in report.checks):.3f}",
        )
        for check in report.checks:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{report.model}.{check.kind}",
                name=check.name,
                time=f"{check.duration_s:.3f}",
            )
            if check.skipped:
                ET.SubElement(case, "skipped", message=check.message)
            elif not check.passed:
                failure = ET.SubElement(
                    case, "failure", message=check.message or "failed", type=check.kind
                )
                failure.text = (
                    f"expected: {check.expected}\nactual: {check.actual}\n{check.message}"
                )
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path
