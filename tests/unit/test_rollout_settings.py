"""`[deploy.rollout]`: its keys checked, the project's, environment's and model's tables
merged key by key, the steps of each strategy, the alarms judged over the hosts' windows and
the SageMaker DeploymentConfig they map onto."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from modelci.deploy.guardrails import judged
from modelci.deploy.sagemaker_rollout import deployment_config, traffic_routing
from modelci.errors import ConfigError
from modelci.rolloutspec import Rollout, RolloutSection, rollout_for, steps
from modelci.serve.split import Window, percentile, takes_candidate
from modelci.spec import ModelSpec, SageMakerSection, load_project, parse_model

MODEL = '[train]\nentrypoint = "train.py"\n'


def _model(extra: str = "") -> ModelSpec:
    return parse_model("models/toy", tomllib.loads(MODEL + extra), "models/toy/model.toml")


def test_project_environment_and_model_tables_merge_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "modelci.toml").write_text(
        "[deploy.rollout]\n"
        'strategy = "canary"\ncanary_percent = 5\nbake_seconds = 30\nmax_error_rate = 0.1\n'
        '[environments.staging]\nsuffix = "-staging"\n'
        '[environments.production]\nsuffix = ""\n'
        "rollout = { bake_seconds = 600, max_p99_ms = 200 }\n"
    )
    project = load_project(tmp_path, {})
    plain = _model()
    staging = rollout_for(project, plain, "staging")
    assert (staging.strategy, staging.steps, staging.bake_seconds) == ("canary", (5,), 30.0)
    assert staging.alarms == {"max_error_rate": 0.1} and staging.configured
    production = rollout_for(project, plain, "production")
    assert production.bake_seconds == 600.0 and production.steps == (5,)
    assert production.alarms == {"max_error_rate": 0.1, "max_p99_ms": 200.0}
    own = _model('[deploy.rollout]\nstrategy = "linear"\nlinear_step_percent = 30\n')
    linear = rollout_for(project, own, "production")
    assert (linear.strategy, linear.steps, linear.bake_seconds) == ("linear", (30, 60, 90), 600.0)


def test_no_table_is_all_at_once(tmp_path: Path) -> None:
    project = load_project(tmp_path, {})
    plan = rollout_for(project, _model(), "staging")
    assert not plan.gradual and plan.steps == () and not plan.configured and plan.alarms == {}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[deploy.rollout]\nstrategy = "blue_green"\n', "deploy.rollout.strategy"),
        ("[deploy.rollout]\ncanary_percent = 100\n", "deploy.rollout.canary_percent"),
        ("[deploy.rollout]\nmax_error_rate = 1.5\n", "deploy.rollout.max_error_rate"),
        ('[deploy.rollout]\nbake_seconds = "60"\n', "deploy.rollout.bake_seconds"),
        ("[deploy.rollout]\nwait = 3\n", "deploy.rollout.wait"),
    ],
)
def test_bad_keys_name_themselves(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "modelci.toml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path, {})
    assert raised.value.exit_code == 2 and key in raised.value.render()


def test_linear_steps_stop_short_of_all() -> None:
    assert steps(RolloutSection(strategy="linear", linear_step_percent=25)) == (25, 50, 75)
    assert steps(RolloutSection(strategy="linear", linear_step_percent=40)) == (40, 80)
    assert steps(RolloutSection(strategy="canary", canary_percent=7)) == (7,)


@pytest.mark.parametrize("percent", [1, 10, 33, 50, 99])
def test_the_candidate_gets_exactly_its_share(percent: int) -> None:
    taken = sum(takes_candidate(sent, percent) for sent in range(1, 1001))
    assert taken == percent * 10
    assert not any(takes_candidate(sent, 0) for sent in range(1, 100))


def test_alarms_are_judged_over_every_hosts_window(tmp_path: Path) -> None:
    (tmp_path / "modelci.toml").write_text(
        '[deploy.rollout]\nstrategy = "canary"\nmax_error_rate = 0.2\nmax_p99_ms = 100\n'
    )
    plan = rollout_for(load_project(tmp_path, {}), _model(), "staging")
    first, second = Window(7, 10), Window(7, 10)
    for status in (200, 200, 500, None):  # None: not delivered, an error but not the model's
        first.count(status, 0.01)
    for _ in range(6):
        second.count(200, 0.02)
    assert (first.errors, first.model_errors) == (2, 1)
    states = [first.to_json(), second.to_json()]
    assert judged(plan, states, 10) is None  # 2 errors of 10: at the threshold, not over
    first.count(500, 0.5)
    assert judged(plan, [first.to_json(), second.to_json()], 11) == (
        "max_error_rate",
        3 / 11,
        0.2,
    )
    assert percentile([float(v) for v in range(1, 101)], 99) == 99.0


def test_sagemaker_deployment_config() -> None:
    section = RolloutSection(strategy="canary", canary_percent=15, bake_seconds=90.0)
    plan_of = RolloutSection.model_validate
    assert traffic_routing(rollout_for_section(plan_of({"strategy": "all_at_once"}))) == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": 0,
    }
    config = deployment_config(SageMakerSection(), rollout_for_section(section), ["mine"])
    policy = config["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 15},
        "WaitIntervalInSeconds": 90,
    }
    assert config["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "mine"}]}
    with pytest.raises(ConfigError, match=r"deploy\.rollout\.bake_seconds"):
        traffic_routing(rollout_for_section(section.model_copy(update={"bake_seconds": 7200.0})))


def rollout_for_section(section: RolloutSection) -> Rollout:
    return Rollout(section.strategy, steps(section), section.bake_seconds, 0.0, {}, 10, True)
