"""Endpoints on SageMaker: a version becomes a SageMaker model and an endpoint configuration,
both named after the version; an endpoint is created with its first configuration and moved to
later ones by UpdateEndpoint with a blue/green deployment (a canary share of the new fleet takes
traffic first; the CloudWatch alarms `[sagemaker] alarms` names roll it back automatically).

Going back to an earlier version (a rollback, or the put-back after a failed deploy) is the same
move to that version's configuration, which still exists. The model's container gets the
artifact (`ModelDataUrl`) and the model folder's code (`SAGEMAKER_SUBMIT_DIRECTORY`, the handler
as `SAGEMAKER_PROGRAM`), as the SDK's framework models do.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.aws import SageMakerAccount, resource_name
from modelci.deploy.base import Answer, Deployer, Served, Superseded
from modelci.envs.retag import pushed_registry
from modelci.errors import ConfigError, DeployFailed
from modelci.registry.base import VersionRecord
from modelci.rolloutspec import rollout_for
from modelci.spec import ModelSpec
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.registry.base import Shadow

POLL_FIRST_S = 0.2  # an endpoint's status is asked for often at first, then every POLL_MAX_S
POLL_MAX_S = 15.0
SETTLED = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")
VARIANT = "AllTraffic"
VERSION_TAG = "modelci:version"


class SageMakerDeployer(Deployer):
    """Creates and updates SageMaker endpoints, and sends requests through sagemaker-runtime.

    Opening one checks the role, the bucket (that it exists), the region and the credentials,
    so that bad configuration stops with exit 2 before an environment's pointer moves.
    """

    native_rollout = True  # [deploy.rollout] becomes the update's DeploymentConfig

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.settings = workspace.project.sagemaker
        self.account = SageMakerAccount.open(
            self.settings, image_registry=pushed_registry(workspace)
        )
        self.account.check_bucket()

    # --- Deployer ---------------------------------------------------------------------------

    def apply(
        self,
        endpoint: str,
        version: str,
        timeout: float,
        superseded: Superseded | None = None,
    ) -> Served:
        """Create the version's model and configuration when missing, move the endpoint to
        that configuration (created, or updated blue/green), and wait until it is InService
        on it. SageMaker takes minutes: the wait is the longer of `timeout` and
        `[sagemaker] max_wait_s`. An update under way cannot be stopped: a superseded deploy
        waits it out (`superseded` is not asked)."""
        record, spec = self._version(version)
        config = self.ensure_config(record, spec)
        deadline = time.monotonic() + max(timeout, float(self.settings.max_wait_s))
        state = self._describe(endpoint)
        if state is not None and state["EndpointStatus"] not in SETTLED:
            state = self._wait(endpoint, deadline)  # one change at a time
        if state is not None and state["EndpointStatus"] == "Failed":
            # a failed endpoint takes no update: SageMaker's advice is to delete and recreate
            with self.account.call("sagemaker", f"deleting the failed endpoint {endpoint}") as api:
                api.delete_endpoint(EndpointName=endpoint)
            state = None
        if state is None:
            with self.account.call("sagemaker", f"creating the endpoint {endpoint}") as api:
                api.create_endpoint(
                    EndpointName=endpoint,
                    EndpointConfigName=config,
                    Tags=[{"Key": VERSION_TAG, "Value": version}],
                )
        elif state.get("EndpointConfigName") != config or state["EndpointStatus"] != "InService":
            with self.account.call("sagemaker", f"updating the endpoint {endpoint}") as api:
                api.update_endpoint(
                    EndpointName=endpoint,
                    EndpointConfigName=config,
                    DeploymentConfig=self.deployment_config(endpoint, spec),
                )
        state = self._wait(endpoint, deadline)
        if state["EndpointStatus"] != "InService":
            raise DeployFailed(
                f"SageMaker endpoint {endpoint} is {state['EndpointStatus']}: "
                f"{state.get('FailureReason') or 'no reason given'}"
            )
        if state.get("EndpointConfigName") != config:
            raise DeployFailed(
                f"SageMaker rolled {endpoint} back to {state.get('EndpointConfigName')}: "
                + (
                    state.get("FailureReason")
                    or "the update did not complete (an alarm of "
                    f"[sagemaker] alarms fired: {', '.join(self.settings.alarms) or 'none'})"
                )
            )
        self._keep_shadow(endpoint, spec, timeout)
        return Served(endpoint, version, None, self.invocation_url(endpoint))

    def _keep_shadow(self, endpoint: str, spec: ModelSpec, timeout: float) -> None:
        """A shadow the registry keeps for the environment goes on mirroring to its candidate
        beside the version now live, as on the endpoint host: the endpoint moves on to that
        pair's shadow configuration (modelci.deploy.sagemaker_shadow)."""
        environment = self._environment(endpoint, spec)
        with self.workspace.registry() as registry:
            shadow = {s.environment: s for s in registry.shadows(spec.name)}.get(environment)
        if shadow is not None:
            self.await_shadow(endpoint, shadow, timeout)

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str | None = None
    ) -> Answer:
        """One request through sagemaker-runtime's InvokeEndpoint. The container's own error
        answer (ModelError) comes back as that answer, not as an exception."""
        from botocore.exceptions import ClientError

        from modelci.aws import error_code

        arguments: dict[str, Any] = {
            "EndpointName": endpoint,
            "Body": body,
            "ContentType": content_type,
        }
        if accept:
            arguments["Accept"] = accept
        with self.account.call("sagemaker-runtime", f"invoking {endpoint}") as runtime:
            try:
                answer = runtime.invoke_endpoint(**arguments)
            except ClientError as error:
                code, message = error_code(error)
                if code == "ModelError":
                    status = int(error.response.get("OriginalStatusCode") or 500)
                    said = str(error.response.get("OriginalMessage") or message)
                    return Answer(status, said.encode(), "text/plain")
                if code == "ValidationError" and "not found" in message:
                    raise ConfigError(
                        f"no SageMaker endpoint {endpoint!r} in "
                        f"{self.account.region}: deploy a model there first"
                    ) from None
                raise
            content = answer["Body"].read()
        return Answer(200, content, answer.get("ContentType"))

    def await_shadow(self, endpoint: str, shadow: Shadow | None, timeout: float) -> str | None:
        """The endpoint moved to the live version with `shadow`'s candidate as its shadow
        variant, or back to the live version alone (modelci.deploy.sagemaker_shadow)."""
        from modelci.deploy import sagemaker_shadow

        return sagemaker_shadow.await_shadow(self, endpoint, shadow, timeout)

    def describe(self, endpoint: str) -> dict[str, object] | None:
        """The endpoint's status, configuration and the version that configuration serves."""
        state = self._describe(endpoint)
        if state is None:
            return None
        config = state.get("EndpointConfigName")
        return {
            "version": self._config_version(config) if config else None,
            "healthy": state["EndpointStatus"] == "InService",
            "status": state["EndpointStatus"],
            "endpoint_config": config,
            "arn": state.get("EndpointArn"),
            "failure_reason": state.get("FailureReason"),
            "url": self.invocation_url(endpoint),
        }

    # --- pieces -----------------------------------------------------------------------------

    def invocation_url(self, endpoint: str) -> str:
        """The runtime URL AWS's SDK posts requests for `endpoint` to."""
        base = str(self.account.client("sagemaker-runtime").meta.endpoint_url).rstrip("/")
        return f"{base}/endpoints/{endpoint}/invocations"

    def deployment_config(self, endpoint: str, spec: ModelSpec) -> dict[str, Any]:
        """UpdateEndpoint's blue/green policy: `[deploy.rollout]` where a strategy is set
        (modelci.deploy.sagemaker_rollout), else a canary of `[sagemaker.canary]`, then all
        traffic; auto-rollback on the alarms the settings name."""
        from modelci.deploy import sagemaker_rollout

        environment = self._environment(endpoint, spec)
        rollout = rollout_for(self.workspace.project, spec, environment)
        if rollout.configured:
            with self.workspace.registry() as registry:
                pointer = registry.get_pointer(spec.name, environment)
            if pointer and pointer.pending and pointer.pending.kind == "rollback":
                rollout = dataclasses.replace(rollout, strategy="all_at_once")  # back at once
            alarms = sagemaker_rollout.ensure_alarms(self.account, endpoint, rollout)
            return sagemaker_rollout.deployment_config(self.settings, rollout, alarms)
        canary = self.settings.canary
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary.percent},
                    "WaitIntervalInSeconds": canary.wait_s,
                },
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": max(600, min(14400, self.settings.max_wait_s)),
            }
        }
        if self.settings.alarms:
            config["AutoRollbackConfiguration"] = {
                "Alarms": [{"AlarmName": name} for name in self.settings.alarms]
            }
        return config

    def ensure_config(self, record: VersionRecord, spec: ModelSpec) -> str:
        """The version's SageMaker model and endpoint configuration, made when missing (and
        its artifact and code put in the bucket first); the configuration's name."""
        name = resource_name(record.version)
        own = spec.file.sagemaker  # the model's [sagemaker], over the project's
        tags = [
            {"Key": VERSION_TAG, "Value": record.version},
            {"Key": "modelci:commit", "Value": record.commit},
        ]
        with self.account.call("sagemaker", f"looking up the model {name}") as api:
            if not self._exists(api.describe_model, ModelName=name):
                model_data = self._model_data(record)
                code = self._code(record, spec)
                handler = spec.file.serve.handler or spec.train.entrypoint
                vpc = (
                    {
                        "VpcConfig": {
                            "Subnets": own.subnets,
                            "SecurityGroupIds": own.security_group_ids,
                        }
                    }
                    if own.subnets
                    else {}
                )
                api.create_model(
                    ModelName=name,
                    ExecutionRoleArn=self.settings.role_arn,
                    Tags=tags,
                    **vpc,
                    PrimaryContainer={
                        "Image": self.account.image_uri(record.model, record.commit),
                        "ModelDataUrl": model_data,
                        "Environment": {
                            **own.environment,
                            "SAGEMAKER_PROGRAM": handler,
                            "SAGEMAKER_SUBMIT_DIRECTORY": code,
                            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                            "SAGEMAKER_REGION": self.account.region,
                            "MODELCI_MODEL": record.model,
                            "MODELCI_VERSION": record.version,
                            "MODELCI_COMMIT": record.commit,
                        },
                    },
                )
            if not self._exists(api.describe_endpoint_config, EndpointConfigName=name):
                kms = {"KmsKeyId": own.kms_key_id} if own.kms_key_id else {}
                api.create_endpoint_config(
                    EndpointConfigName=name,
                    Tags=tags,
                    **kms,
                    **self._data_capture(spec),
                    ProductionVariants=[
                        {
                            "VariantName": VARIANT,
                            "ModelName": name,
                            "InitialInstanceCount": own.endpoint_instance_count
                            or self.settings.endpoint_instance_count,
                            "InstanceType": own.endpoint_instance_type
                            or self.settings.endpoint_instance_type,
                            "InitialVariantWeight": 1.0,
                        }
                    ],
                )
        return name

    def _environment(self, endpoint: str, spec: ModelSpec) -> str:
        """The environment whose endpoint of `spec`'s model this is."""
        for name, environment in self.workspace.project.environments.items():
            if spec.name + environment.suffix == endpoint:
                return name
        raise ConfigError(f"{endpoint!r} is no environment's endpoint of {spec.name!r}")

    def _data_capture(self, spec: ModelSpec) -> dict[str, Any]:
        """`[serve.capture]` as SageMaker's DataCaptureConfig: the same share (a whole percent,
        at least 1), requests and answers, JSON and CSV kept as text, under
        `s3://<bucket>/<prefix>/capture/` (SageMaker adds `<endpoint>/<variant>/yyyy/mm/dd/hh/`)."""
        percent = spec.file.serve.capture.percent
        if percent <= 0:
            return {}
        return {
            "DataCaptureConfig": {
                "EnableCapture": True,
                "InitialSamplingPercentage": max(1, round(percent)),
                "DestinationS3Uri": self.account.s3_url("capture"),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {
                    "CsvContentTypes": ["text/csv"],
                    "JsonContentTypes": ["application/json"],
                },
            }
        }

    def _version(self, version: str) -> tuple[VersionRecord, ModelSpec]:
        from modelci.spec import find_model

        with self.workspace.registry() as registry:
            record = registry.get_version(version)
        if record is None or not record.artifact_sha256:
            raise ConfigError(f"version {version} has no stored artifact to deploy")
        return record, find_model(self.workspace.models, record.model)

    def _model_data(self, record: VersionRecord) -> str:
        """The artifact in the bucket as `.../models/<sha256>/model.tar.gz` (content-addressed:
        put there once, whatever the store)."""
        assert record.artifact_sha256 is not None
        url = self.account.s3_url("models", record.artifact_sha256, "model.tar.gz")
        if not self.account.exists(url):
            with tempfile.TemporaryDirectory() as scratch:
                archive = self.workspace.store().get_file(
                    record.artifact_sha256, Path(scratch) / "model.tar.gz"
                )
                self.account.upload(archive, url)
        return url

    def _code(self, record: VersionRecord, spec: ModelSpec) -> str:
        """The model folder as the version's commit has it, packed as `sourcedir.tar.gz`."""
        from modelci.train.jobs import export
        from modelci.train.sagemaker import pack_source

        url = self.account.s3_url("code", resource_name(record.version), "sourcedir.tar.gz")
        if record.details.get("dirty") or not self.account.exists(url):
            with tempfile.TemporaryDirectory() as scratch:
                exported = Path(scratch) / "export"
                export(
                    self.workspace.root,
                    None if record.details.get("dirty") else record.commit,
                    [spec.folder],
                    exported,
                )
                source = pack_source(exported / spec.folder, Path(scratch) / "sourcedir.tar.gz")
                self.account.upload(source, url)
        return url

    def _describe(self, endpoint: str) -> dict[str, Any] | None:
        with self.account.call("sagemaker", f"describing the endpoint {endpoint}") as api:
            found: dict[str, Any] | None = self._exists(
                api.describe_endpoint, EndpointName=endpoint
            )
        return found

    def _wait(self, endpoint: str, deadline: float) -> dict[str, Any]:
        """Poll until the endpoint settles (InService, Failed, ...) or the deadline passes."""
        interval = POLL_FIRST_S
        pause = threading.Event()  # waited on, never set: a poll interval that Ctrl-C ends
        while True:
            state = self._describe(endpoint)
            if state is None:
                raise DeployFailed(f"SageMaker endpoint {endpoint} disappeared")
            if state["EndpointStatus"] in SETTLED:
                return state
            if time.monotonic() > deadline:
                raise DeployFailed(
                    f"SageMaker endpoint {endpoint} is still "
                    f"{state['EndpointStatus']} after the wait "
                    "([sagemaker] max_wait_s)"
                )
            pause.wait(min(interval, max(deadline - time.monotonic(), 0.0)))
            interval = min(interval * 2, POLL_MAX_S)

    def _config_version(self, config: str) -> str:
        """The version an endpoint configuration serves, from its tag (its name otherwise)."""
        with self.account.call("sagemaker", f"reading the tags of {config}") as api:
            arn = api.describe_endpoint_config(EndpointConfigName=config)["EndpointConfigArn"]
            tags = api.list_tags(ResourceArn=arn).get("Tags", [])
        return next((t["Value"] for t in tags if t.get("Key") == VERSION_TAG), config)

    @staticmethod
    def _exists(describe: Any, **arguments: str) -> dict[str, Any] | None:
        """A Describe* answer, or None when SageMaker says the resource does not exist."""
        from botocore.exceptions import ClientError

        from modelci.aws import error_code

        try:
            answer: dict[str, Any] = describe(**arguments)
        except ClientError as error:
            code, message = error_code(error)
            if code == "ValidationException" and "Could not find" in message:
                return None
            raise
        return answer
