"""Shadow traffic on SageMaker (`modelci deploy --shadow` with `[deploy] backend =
"sagemaker"`): the endpoint moves to a configuration holding the live version as its one
production variant and the candidate as its one shadow variant (`ShadowProductionVariants`),
to which SageMaker replicates a share of the requests and whose answers it never returns. The
share is the shadow variant's `InitialVariantWeight` against the production variant's (1.0):
`--percent 25` is a weight of 0.25. Data capture records both variants' requests and answers,
every one of them, so that each mirrored request's two records can be paired
(`modelci.shadow.sagemaker_report`); `--shadow --stop` moves the endpoint back to the live
version's own configuration."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from modelci.aws import resource_name
from modelci.errors import ConfigError, DeployFailed
from modelci.monitor.sources import SHADOW_VARIANT  # the candidate's variant, read back there

if TYPE_CHECKING:
    from modelci.deploy.sagemaker import SageMakerDeployer
    from modelci.registry.base import Shadow
    from modelci.spec import ModelSpec

SHADOW_TAG = "modelci:shadow"  # on a shadow configuration: the candidate version


def shadow_config_name(live: str, candidate: str, percent: int) -> str:
    """The configuration of `live` mirroring `percent` % to `candidate` (one per triple)."""
    return resource_name(f"{live}-shadow{percent}-{candidate}")


def shadow_config(
    deployer: SageMakerDeployer, live: str, candidate: str, percent: int
) -> dict[str, Any]:
    """CreateEndpointConfig's arguments for `live` mirroring `percent` % to `candidate`: both
    versions' models are made when missing (their own configurations too, so that either can
    be deployed later), the variants as `ensure_config` sizes them, and data capture of every
    request and answer of both variants."""
    records: dict[str, ModelSpec] = {}
    for version in (live, candidate):
        record, spec = deployer._version(version)
        deployer.ensure_config(record, spec)
        records[version] = spec
    live_spec = records[live]
    own = live_spec.file.sagemaker
    settings = deployer.settings

    def variant(name: str, version: str, weight: float) -> dict[str, Any]:
        sized = records[version].file.sagemaker
        return {
            "VariantName": name,
            "ModelName": resource_name(version),
            "InitialInstanceCount": sized.endpoint_instance_count
            or settings.endpoint_instance_count,
            "InstanceType": sized.endpoint_instance_type or settings.endpoint_instance_type,
            "InitialVariantWeight": weight,
        }

    from modelci.deploy.sagemaker import VARIANT, VERSION_TAG

    kms = {"KmsKeyId": own.kms_key_id} if own.kms_key_id else {}
    return {
        "EndpointConfigName": shadow_config_name(live, candidate, percent),
        "Tags": [
            {"Key": VERSION_TAG, "Value": live},  # what it serves: the live version
            {"Key": SHADOW_TAG, "Value": candidate},
        ],
        **kms,
        "ProductionVariants": [variant(VARIANT, live, 1.0)],
        "ShadowProductionVariants": [variant(SHADOW_VARIANT, candidate, percent / 100)],
        "DataCaptureConfig": {
            "EnableCapture": True,
            # every request: a pair needs both variants' records of the same request
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": deployer.account.s3_url("capture"),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        },
    }


def await_shadow(
    deployer: SageMakerDeployer, endpoint: str, shadow: Shadow | None, timeout: float
) -> str | None:
    """Move `endpoint` to the configuration the registry asks for: the live version with
    `shadow`'s candidate as its shadow variant, or (`shadow` None) the live version alone;
    wait until it is InService on it. Returns the invocation URL."""
    from modelci.deploy.sagemaker import SETTLED

    deadline = time.monotonic() + max(timeout, float(deployer.settings.max_wait_s))
    state = deployer._describe(endpoint)
    if state is None:
        raise ConfigError(f"no SageMaker endpoint {endpoint!r}: deploy a version there first")
    if state["EndpointStatus"] not in SETTLED:
        state = deployer._wait(endpoint, deadline)  # one change at a time
    if shadow is not None:
        with deployer.workspace.registry() as registry:
            pointer = registry.get_pointer(shadow.model, shadow.environment)
        if pointer is None:
            raise ConfigError(f"{shadow.environment} serves no version of {shadow.model!r}")
        arguments = shadow_config(deployer, pointer.version, shadow.version, shadow.percent)
        target = arguments["EndpointConfigName"]
        with deployer.account.call("sagemaker", f"looking up {target}") as api:
            if not deployer._exists(api.describe_endpoint_config, EndpointConfigName=target):
                api.create_endpoint_config(**arguments)
    else:
        current = state.get("EndpointConfigName")
        live = deployer._config_version(current) if current else None
        if live is None:
            return deployer.invocation_url(endpoint)
        record, spec = deployer._version(live)
        target = deployer.ensure_config(record, spec)
    if state.get("EndpointConfigName") != target:
        with deployer.account.call("sagemaker", f"updating the endpoint {endpoint}") as api:
            api.update_endpoint(EndpointName=endpoint, EndpointConfigName=target)
    state = deployer._wait(endpoint, deadline)
    if state["EndpointStatus"] != "InService" or state.get("EndpointConfigName") != target:
        raise DeployFailed(
            f"SageMaker endpoint {endpoint} is {state['EndpointStatus']} on "
            f"{state.get('EndpointConfigName')}, not on {target}: "
            f"{state.get('FailureReason') or 'no reason given'}"
        )
    return deployer.invocation_url(endpoint)
