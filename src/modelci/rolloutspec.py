"""`[deploy.rollout]`: how a deploy moves traffic to the new version (all at once, a canary,
or linear steps), how long each step bakes, and the alarms that send all traffic back to the
old version. Set project-wide in `modelci.toml`, per environment (`[environments.<name>.
rollout]`) and per model (`[deploy.rollout]` in `model.toml`); each later one overrides the
keys it sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from modelci.sections import Strict

if TYPE_CHECKING:
    from modelci.spec import ModelSpec, ProjectFile

Strategy = Literal["all_at_once", "canary", "linear"]
ALARMS = ("max_error_rate", "max_model_error_rate", "max_p99_ms")


class RolloutSection(Strict):
    strategy: Strategy = "all_at_once"
    canary_percent: int = Field(default=10, ge=1, le=99)
    linear_step_percent: int = Field(default=25, ge=1, le=99)
    bake_seconds: float = Field(default=60.0, gt=0)
    termination_wait_seconds: float = Field(default=0.0, ge=0)
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    max_model_error_rate: float | None = Field(default=None, ge=0, le=1)
    min_requests: int = Field(default=10, ge=1)


class ModelDeploySection(Strict):
    """`[deploy]` of `model.toml`: this model's own rollout keys."""

    rollout: RolloutSection = RolloutSection()


@dataclass(frozen=True)
class Rollout:
    """The rollout in force for one model in one environment."""

    strategy: Strategy
    steps: tuple[int, ...]  # the candidate's share of the traffic at each step, in percent
    bake_seconds: float
    termination_wait_seconds: float
    alarms: dict[str, float]  # alarm key -> threshold
    min_requests: int
    configured: bool  # a table set `strategy` (SageMaker keeps `[sagemaker.canary]` otherwise)

    @property
    def gradual(self) -> bool:
        return self.strategy != "all_at_once"


def steps(section: RolloutSection) -> tuple[int, ...]:
    """The candidate's share at each step before it takes all traffic."""
    if section.strategy == "canary":
        return (section.canary_percent,)
    if section.strategy == "linear":
        size = section.linear_step_percent
        return tuple(range(size, 100, size))
    return ()


def merged(*sections: RolloutSection | None) -> RolloutSection:
    """The later sections' keys (those they set) over the earlier ones'."""
    values: dict[str, object] = {}
    for section in filter(None, sections):
        values.update({key: getattr(section, key) for key in section.model_fields_set})
    return RolloutSection.model_validate(values)


def rollout_for(project: ProjectFile, spec: ModelSpec, environment: str) -> Rollout:
    """The rollout of `spec` in `environment`: project, environment, then model keys."""
    section = merged(
        project.deploy.rollout,
        project.environments[environment].rollout,
        spec.file.deploy.rollout,
    )
    alarms = {key: value for key in ALARMS if (value := getattr(section, key)) is not None}
    return Rollout(
        section.strategy,
        steps(section),
        section.bake_seconds,
        section.termination_wait_seconds,
        alarms,
        section.min_requests,
        "strategy" in section.model_fields_set,
    )
