"""The gates judged when a version moves into a later environment, whichever command moves
it (`deploy --env`, `promote`, `release`, the dashboard's promote): `shadow_disagreement` on
its newest shadow in the target environment (modelci.shadow.summary), and `drift` on what was
captured of it in the environment it served before (modelci.testing.driftgate). The deploy
(modelci.deploy.rollout) adds their refusals to its own rules, so `--force` overrides them
all and the deploy's event records what it overrode."""

from __future__ import annotations

from modelci.registry.base import Registry, VersionRecord
from modelci.workspace import Workspace


def move_refusals(
    workspace: Workspace,
    registry: Registry,
    record: VersionRecord,
    environment: str,
    previous: str | None,
    source: str | None = None,
) -> list[str]:
    """Why the gates refuse moving `record`'s version into `environment` (which serves
    `previous`), from `source` (default: the environment before it). The first environment
    has none before it: a move there is judged only when it names its source (`promote
    --from`). The shadow gate needs a version serving to shadow."""
    order = workspace.environments
    index = order.index(environment)
    refusals: list[str | None] = []
    if index > 0 and previous is not None:
        from modelci.shadow.summary import shadow_refusal

        refusals.append(shadow_refusal(workspace, registry, record.version, environment))
    origin = source if source is not None else order[index - 1] if index else None
    if origin is not None and origin != environment:  # none for `run`'s deploy: nothing loaded
        from modelci.testing.driftgate import drift_refusal

        refusals.append(drift_refusal(workspace, record.model, origin, record.version))
    return [r for r in refusals if r]
