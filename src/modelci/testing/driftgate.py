"""The drift gate (`[gates] drift = "< 0.5"`): before `promote` takes a version from an
environment, the share of columns whose captured requests there drifted from the version's
training data (`modelci drift`) must hold the bound. Nothing captured holds no bound. `modelci
test` leaves this gate to promotion: a version has served nothing when it is tested."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelci.errors import GateFailed
from modelci.testing.gates import parse_gate
from modelci.testing.report import CheckResult

if TYPE_CHECKING:
    from modelci.workspace import Workspace

DRIFT = "drift"


def check_drift_gate(
    workspace: Workspace, model: str, environment: str, version: str
) -> CheckResult | None:
    """The drift gate's verdict on `version`'s captures in `environment`, or None when the
    model (as the checkout has it) declares no drift gate."""
    from modelci.monitor.drift import drift_report

    readable, _ = workspace.readable_models
    spec = next((m for m in readable if m.name == model), None)
    expression = spec.file.gates.get(DRIFT) if spec is not None else None
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


def hold_drift_gate(workspace: Workspace, model: str, environment: str, version: str) -> None:
    """Raise GateFailed when the drift gate refuses to promote `version` from `environment`."""
    result = check_drift_gate(workspace, model, environment, version)
    if result is not None and not result.passed:
        raise GateFailed(
            f"the drift gate refuses to promote {version} from {environment}: {result.message}, "
            f"expected drift {result.expected} (`modelci drift {model} --env {environment}`; "
            "--force to promote anyway)",
            key=f"gates.{DRIFT}",
        )
