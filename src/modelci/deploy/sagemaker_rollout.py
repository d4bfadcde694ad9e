"""`[deploy.rollout]` on SageMaker: the strategy becomes UpdateEndpoint's blue/green
`DeploymentConfig` (`TrafficRoutingConfiguration` ALL_AT_ONCE, CANARY or LINEAR, the bake as
its wait interval, `TerminationWaitInSeconds`), and each alarm a CloudWatch alarm on the
endpoint's metrics that SageMaker's `AutoRollbackConfiguration` watches: `max_error_rate` on
`Invocation5XXErrors`, `max_model_error_rate` on `InvocationModelErrors` (both averaged per
request: a rate), `max_p99_ms` on `ModelLatency`'s p99 (in microseconds). SageMaker then
moves the traffic and rolls back by itself; the deploy waits its update out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError
from modelci.rolloutspec import Rollout

if TYPE_CHECKING:
    from modelci.aws import SageMakerAccount
    from modelci.sections import SageMakerSection

MAX_WAIT_S = 3600  # SageMaker's limit on WaitIntervalInSeconds and TerminationWaitInSeconds
VARIANT = "AllTraffic"
METRICS = {  # alarm key -> (metric, statistic, factor from the threshold to the metric's unit)
    "max_error_rate": ("Invocation5XXErrors", "Average", 1.0),
    "max_model_error_rate": ("InvocationModelErrors", "Average", 1.0),
    "max_p99_ms": ("ModelLatency", "p99", 1000.0),
}


def alarm_name(endpoint: str, key: str) -> str:
    return f"modelci-{endpoint}-{key.replace('_', '-')}"


def ensure_alarms(account: SageMakerAccount, endpoint: str, rollout: Rollout) -> list[str]:
    """The CloudWatch alarms of the rollout's alarm keys on `endpoint`, put (made or updated)
    now; their names."""
    names = []
    for key, threshold in rollout.alarms.items():
        metric, statistic, factor = METRICS[key]
        name = alarm_name(endpoint, key)
        statistics: dict[str, Any] = (
            {"ExtendedStatistic": statistic}
            if statistic.startswith("p")
            else {"Statistic": statistic}
        )
        with account.call("cloudwatch", f"putting the alarm {name}") as api:
            api.put_metric_alarm(
                AlarmName=name,
                AlarmDescription=f"modelci [deploy.rollout] {key} = {threshold:g} of {endpoint}",
                Namespace="AWS/SageMaker",
                MetricName=metric,
                Dimensions=[
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": VARIANT},
                ],
                Period=60,
                EvaluationPeriods=1,
                Threshold=threshold * factor,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                **statistics,
            )
        names.append(name)
    return names


def traffic_routing(rollout: Rollout) -> dict[str, Any]:
    """The strategy as SageMaker's TrafficRoutingConfiguration."""
    wait = _seconds(rollout.bake_seconds, "bake_seconds")
    if rollout.strategy == "canary":
        size = {"Type": "CAPACITY_PERCENT", "Value": rollout.steps[0]}
        return {"Type": "CANARY", "CanarySize": size, "WaitIntervalInSeconds": wait}
    if rollout.strategy == "linear":
        size = {"Type": "CAPACITY_PERCENT", "Value": rollout.steps[0]}
        return {"Type": "LINEAR", "LinearStepSize": size, "WaitIntervalInSeconds": wait}
    return {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}


def deployment_config(
    settings: SageMakerSection, rollout: Rollout, alarms: list[str]
) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig for `rollout`, `alarms` (besides `[sagemaker]
    alarms`) rolling it back."""
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": traffic_routing(rollout),
            "TerminationWaitInSeconds": _seconds(
                rollout.termination_wait_seconds, "termination_wait_seconds"
            ),
            "MaximumExecutionTimeoutInSeconds": max(600, min(14400, settings.max_wait_s)),
        }
    }
    names = [*settings.alarms, *alarms]
    if names:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": n} for n in names]}
    return config


def _seconds(value: float, key: str) -> int:
    if value > MAX_WAIT_S:
        raise ConfigError(
            f"SageMaker waits at most {MAX_WAIT_S} s, not {value:g}", key=f"deploy.rollout.{key}"
        )
    return round(value)
