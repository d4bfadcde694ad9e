"""The drift gate (`[gates] drift = "< 0.5"`): when a version moves into a later environment
(`deploy --env`, `promote`, `release`), the share of columns whose captured requests in the
environment it served before drifted from the version's training data (`modelci drift`) must
hold the bound; `modelci.deploy.movegates` judges it with the other gates of a move. Nothing
captured holds no bound. `modelci test` leaves this gate to the move: a version has served
nothing when it is tested."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelci.testing.gates import parse_gate
from modelci.testing.report import CheckResult

if TYPE_CHECKING:
    from modelci.workspace import Workspace

DRIFT = "drift"


def check_drift_gate(
    workspace: Workspace, model: str, environment: str, version: str
) -> CheckResult | None:
    """The drift gate's verdict on `version`'s captures in `environment`, or None when the
    model (as the checkout has it) declares no drift gate. An unknown model is a ConfigError."""
    from modelci.monitor.drift import drift_report

    expression = workspace.model(model).file.gates.get(DRIFT)  # as the deploy reads the spec
    if expression is None:
        return None
    gate = parse_gate(str(expression), metric=DRIFT)
    report = drift_report(workspace, model, environment, version=version)
    if not report.rows:
        message = f"nothing of {version} captured in {environment} to compare ([serve.capture])"
        return CheckResult(DRIFT, DRIFT, False, str(gate), None, message)
    held = gate.holds(report.share)
    drifted = ", ".join(c.column for c in report.columns if c.drifted) or "none"
    message = f"{report.share:.0%} of columns drifted ({drifted}) over {report.rows} rows"
    return CheckResult(DRIFT, DRIFT, held, str(gate), report.share, message)


def drift_refusal(workspace: Workspace, model: str, source: str, version: str) -> str | None:
    """Why the drift gate refuses to move `version` on from `source`, judged on its captures
    there; None when it holds or the model declares no drift gate."""
    result = check_drift_gate(workspace, model, source, version)
    if result is None or result.passed:
        return None
    how = f"`modelci drift {model} --env {source}`"
    why = (
        f"{result.message}, expected drift {result.expected} ({how})"
        if result.actual is None
        else f"drift = {result.actual:.4g}, expected {result.expected} ({result.message}; {how})"
    )
    return f"the drift gate refuses {version} from {source}: {why}"
