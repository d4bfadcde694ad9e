"""What `modelci shadow MODEL --env ENV` reports, and what the `shadow_disagreement` gate
judges: one shadow's pairs (the running one by default, else the newest that recorded any,
or the one a deploy's candidate was shadowed in), read through the registry and the store,
compared (`report`)."""

from __future__ import annotations

from typing import Any

from modelci.errors import ConfigError
from modelci.monitor.sources import reads_sagemaker
from modelci.registry.base import Registry
from modelci.shadow.pairs import Session, read_pairs, sessions
from modelci.shadow.report import compare
from modelci.testing.gates import SHADOW_GATE as GATE
from modelci.testing.gates import parse_gate
from modelci.workspace import Workspace

MAX_PAIRS = 100_000  # the newest pairs of a shadow read, at most


def summarize(
    workspace: Workspace,
    registry: Registry,
    model: str,
    environment: str,
    *,
    session: int | None = None,
    version: str | None = None,
    limit: int = MAX_PAIRS,
) -> dict[str, Any]:
    """The comparison of one shadow of the environment: `session` (a start event's id),
    else the newest of `version`'s, else the running one, else the newest with pairs. On the
    sagemaker deploy backend the pairs come from SageMaker's own capture
    (modelci.shadow.sagemaker_report)."""
    if reads_sagemaker(workspace):
        from modelci.shadow.sagemaker_report import summarize_sagemaker

        summary = summarize_sagemaker(
            workspace, registry, model, environment, session=session, version=version, limit=limit
        )
        summary["gate"] = judge(workspace, model, summary)
        return summary
    active = {s.environment: s for s in registry.shadows(model)}.get(environment)
    found = sessions(registry, model, environment)
    chosen: Session | None
    if session is not None:
        chosen = found.get(session)
        if chosen is None and (active is None or active.event != session):
            known = ", ".join(str(s) for s in sorted(found)) or "none"
            raise ConfigError(
                f"no shadow {session} of {model!r} in {environment} recorded pairs "
                f"(shadows: {known})",
                key="--session",
            )
    elif version is not None:
        chosen = next((s for s in found.values() if s.version == version), None)  # newest
    elif active is not None:
        chosen = found.get(active.event)
    else:
        chosen = next(iter(found.values()), None)
    event = session or (chosen.event if chosen else active.event if active else None)
    running = active is not None and active.event == event
    document: dict[str, Any] = {
        "model": model,
        "environment": environment,
        "endpoint": workspace.endpoint(model, environment),
        "session": event,
        "running": running,
        "version": chosen.version if chosen else active.version if running and active else None,
        "percent": active.percent if running and active else None,
        "dropped": chosen.dropped if chosen else 0,
        "batches": len(chosen.batches) if chosen else 0,
        **compare(read_pairs(workspace.store(), chosen, limit) if chosen else []),
    }
    document["gate"] = judge(workspace, model, document)
    return document


def judge(workspace: Workspace, model: str, document: dict[str, Any]) -> dict[str, Any] | None:
    """The model's `shadow_disagreement` gate over a summary, or None when it has none."""
    expression = workspace.model(model).file.gates.get(GATE)
    if expression is None:
        return None
    gate = parse_gate(str(expression), metric=GATE)
    value = document.get("disagreement")
    held = value is not None and gate.holds(float(value))
    if value is None:
        message = f"no shadow of {document.get('version') or 'it'} recorded a comparable pair"
    else:
        message = "" if held else f"{GATE} = {value:g}, expected {gate}"
    return {"expression": str(gate), "value": value, "passed": held, "message": message}


def shadow_refusal(
    workspace: Workspace, registry: Registry, version: str, environment: str
) -> str | None:
    """Why the `shadow_disagreement` gate refuses deploying `version` to `environment`, from
    the newest shadow of that version there; None when it holds or the model has no such
    gate. A deploy to the first environment, or to one serving nothing, is not judged."""
    record = registry.get_version(version)
    if record is None:
        return None
    spec = workspace.model(record.model)
    if GATE not in spec.file.gates:
        return None
    summary = summarize(workspace, registry, record.model, environment, version=version)
    gate = summary["gate"]
    if gate is None or gate["passed"]:
        return None
    return (
        f"{version} fails its gate {GATE} {gate['expression']} in {environment}: "
        f"{gate['message']} (`modelci deploy {record.model} --env {environment} --shadow` "
        "mirrors requests to it)"
    )
