"""Training on SageMaker: the job folder's code and channels go to S3, a training job runs the
entry point in the model's image (or SageMaker's scikit-learn framework image) in script mode,
and its `model.tar.gz` comes back into the job folder's `model/`, so that the version is packed
and stored as after a local job.

What the SDK's `Estimator.fit` sends, sent the same way: the model folder as
`sourcedir.tar.gz` (its files at the archive's root), hyperparameters JSON-encoded with
`sagemaker_program`, `sagemaker_submit_directory`, `sagemaker_container_log_level`,
`sagemaker_job_name` and `sagemaker_region` among them, and the spec's metric regexes as metric
definitions. Everything of one job lives under `<bucket prefix>/<job name>/`: `source/`,
`input/<channel>/` and SageMaker's own `output/model.tar.gz`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from modelci.aws import SageMakerAccount, resource_name
from modelci.envs.retag import pushed_registry
from modelci.progress import Progress
from modelci.runtime import tarball
from modelci.runtime.jobdir import encode_hyperparameters
from modelci.sections import ModelSageMakerSection
from modelci.train.artifacts import unpack
from modelci.train.base import JOB_VERSION, JobResult, Trainer, TrainingJob
from modelci.workspace import Workspace

_log = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
VOLUME_SIZE_GB = 30  # a training job's volume unless the model says otherwise
POLL_FIRST_S = 0.2  # a job's status is asked for often at first, then every POLL_MAX_S
POLL_MAX_S = 15.0
FINISHED = ("Completed", "Failed", "Stopped")


def pack_source(folder: Path, destination: Path) -> Path:
    """`sourcedir.tar.gz` as the SDK's `tar_and_upload_dir` makes it: the folder's files at the
    archive's root (caches and folder entries left out), packed reproducibly, so the same
    code packs alike."""
    return tarball.pack(folder, destination, leave_out={"__pycache__"}, folders=False)


def job_name(base: str) -> str:
    """A training job's name: the job folder's (version and time) and four random hex digits,
    within SageMaker's 63 characters of letters, digits and hyphens. SageMaker never reuses a
    job's name, so two machines starting the same second still differ."""
    suffix = secrets.token_hex(2)
    return resource_name(base, limit=63 - len(suffix) - 1) + "-" + suffix


class SageMakerTrainer(Trainer):
    """Runs a job as a SageMaker training job and waits for it, with progress.

    Opening one checks the role, the bucket (that it exists), the region and the credentials,
    so that bad configuration stops with exit 2 before a version is recorded or a file
    uploaded.
    """

    def __init__(self, workspace: Workspace):
        self.settings = workspace.project.sagemaker
        self.account = SageMakerAccount.open(
            self.settings, image_registry=pushed_registry(workspace)
        )
        self.account.check_bucket()

    def run(self, job: TrainingJob, on_line: Progress | None = None) -> JobResult:
        started = time.monotonic()
        job.job.log.parent.mkdir(parents=True, exist_ok=True)
        name = job_name(job.name)
        with job.job.log.open("w", encoding="utf-8") as log:

            def say(line: str) -> None:
                log.write(line + "\n")
                log.flush()
                if on_line is not None:
                    on_line(line)

            details: dict[str, Any] = {
                "training_job_name": name,
                "training_job_region": self.account.region,
            }
            say(f"[sagemaker] training job {name} in {self.account.region}")
            request = self._request(job, name, say)
            with self.account.call("sagemaker", f"creating the training job {name}") as api:
                details["training_job_arn"] = api.create_training_job(**request)["TrainingJobArn"]
            say(f"[sagemaker] created {details['training_job_arn']}")
            try:
                final, past_deadline = self._wait(job, name, started, say)
            except BaseException:  # Ctrl-C or a failure while waiting: don't leave it running
                self._stop(name)
                raise
            status = final["TrainingJobStatus"]
            duration = time.monotonic() - started
            details["billable_s"] = final.get("BillableTimeInSeconds")
            if status != "Completed":
                timed_out = past_deadline or final.get("SecondaryStatus") == "MaxRuntimeExceeded"
                reason = (
                    f"timed out after {job.timeout:g} s ([train].timeout)"
                    if timed_out
                    else final.get("FailureReason") or f"the training job ended {status}"
                )
                say(f"[sagemaker] {name}: {status}: {reason}")
                return JobResult(
                    False, duration, job.job.log, None, reason, timed_out, details=details
                )
            model_data = final.get("ModelArtifacts", {}).get("S3ModelArtifacts")
            if not model_data:
                return JobResult(
                    False,
                    duration,
                    job.job.log,
                    None,
                    "the training job completed without model artifacts",
                    details=details,
                )
            details["model_data_url"] = model_data
            say(f"[sagemaker] downloading {model_data}")
            archive = self.account.download(
                model_data, job.job.output / "sagemaker" / "model.tar.gz"
            )
            unpack(archive, job.job.model)
            metrics = {
                m["MetricName"]: float(m["Value"])
                for m in final.get("FinalMetricDataList", [])
                if m.get("MetricName") in job.metrics and "Value" in m
            }
            say(f"[sagemaker] {name}: Completed")
        return JobResult(
            True, time.monotonic() - started, job.job.log, None, details=details, metrics=metrics
        )

    # --- the request ------------------------------------------------------------------------

    def _request(self, job: TrainingJob, name: str, say: Progress) -> dict[str, Any]:
        """Upload the code and channels, and the CreateTrainingJob request that uses them."""
        account = self.account
        match = JOB_VERSION.match(job.name)
        image = account.image_uri(
            match["model"] if match else None, match["sha12"] if match else None
        )
        source = pack_source(job.job.code, job.job.root / "sourcedir.tar.gz")
        submit = account.upload(source, account.s3_url(name, "source", "sourcedir.tar.gz"))
        say(f"[sagemaker] code: {submit}")
        inputs = []
        for channel in job.channels:
            folder = job.job.channel(channel)
            url = account.s3_url(name, "input", channel)
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                account.upload(path, f"{url}/{path.relative_to(folder).as_posix()}")
            say(f"[sagemaker] channel {channel}: {url}/")
            inputs.append(
                {
                    "ChannelName": channel,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": url + "/",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                }
            )
        hyperparameters = encode_hyperparameters(
            {
                **job.hyperparameters,
                "sagemaker_program": job.entrypoint,
                "sagemaker_submit_directory": submit,
                "sagemaker_container_log_level": 20,
                "sagemaker_job_name": name,
                "sagemaker_region": account.region,
            }
        )
        own = job.sagemaker or ModelSageMakerSection()  # the model's, over the project's
        runtime = max(int(job.timeout), 1)
        resources: dict[str, Any] = {
            "InstanceType": own.instance_type or self.settings.instance_type,
            "InstanceCount": own.instance_count or self.settings.instance_count,
            "VolumeSizeInGB": own.volume_size_gb or VOLUME_SIZE_GB,
        }
        output: dict[str, Any] = {"S3OutputPath": account.s3_url()}
        stopping: dict[str, Any] = {"MaxRuntimeInSeconds": runtime}
        request: dict[str, Any] = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": image,
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": metric, "Regex": regex} for metric, regex in job.metrics.items()
                ],
            },
            "RoleArn": self.settings.role_arn,
            "HyperParameters": hyperparameters,
            "InputDataConfig": inputs,
            "OutputDataConfig": output,
            "ResourceConfig": resources,
            "StoppingCondition": stopping,
            "Environment": {
                **own.environment,
                "MODELCI_SEED": str(job.seed),
                "PYTHONHASHSEED": str(job.seed),
                **job.extra_env,
            },
            "Tags": [{"Key": "modelci:job", "Value": job.name}],
        }
        if own.kms_key_id:
            resources["VolumeKmsKeyId"] = own.kms_key_id
            output["KmsKeyId"] = own.kms_key_id
        if own.spot:
            request["EnableManagedSpotTraining"] = True
            stopping["MaxWaitTimeInSeconds"] = own.spot_max_wait_s or 2 * runtime
        if own.checkpoint_s3_uri:
            request["CheckpointConfig"] = {
                "S3Uri": own.checkpoint_s3_uri,
                "LocalPath": "/opt/ml/checkpoints",
            }
        if own.subnets:
            request["VpcConfig"] = {
                "Subnets": own.subnets,
                "SecurityGroupIds": own.security_group_ids,
            }
        return request

    # --- waiting ----------------------------------------------------------------------------

    def _wait(
        self, job: TrainingJob, name: str, started: float, say: Progress
    ) -> tuple[dict[str, Any], bool]:
        """Poll the job until it ends, saying each status change and streaming its log; stop
        it when it outlives its timeout plus `max_wait_s` (its time in SageMaker's queue).
        The job's last description, and whether modelci stopped it at that deadline."""
        deadline = started + job.timeout + self.settings.max_wait_s
        seen: set[tuple[str, str]] = set()
        logs = _LogFollower(self.account, name)
        interval = POLL_FIRST_S
        pause = threading.Event()  # waited on, never set: a poll interval that Ctrl-C ends
        while True:
            with self.account.call("sagemaker", f"watching the training job {name}") as api:
                state: dict[str, Any] = api.describe_training_job(TrainingJobName=name)
            for transition in state.get("SecondaryStatusTransitions", []):
                key = (str(transition.get("Status")), str(transition.get("StatusMessage", "")))
                if key not in seen:
                    seen.add(key)
                    say(f"[sagemaker] {key[0]}: {key[1]}".rstrip(": "))
            for line in logs.new_lines():
                say(line)
            if state.get("TrainingJobStatus") in FINISHED:
                for line in logs.new_lines():  # what was written as it ended
                    say(line)
                return state, False
            if time.monotonic() > deadline:
                self._stop(name)
                say(
                    f"[sagemaker] {name}: stopped after {job.timeout:g} s + "
                    f"{self.settings.max_wait_s} s of waiting ([sagemaker] max_wait_s)"
                )
                return {**state, "TrainingJobStatus": "Stopped"}, True
            pause.wait(min(interval, max(deadline - time.monotonic(), 0.0)))
            interval = min(interval * 2, POLL_MAX_S)

    def _stop(self, name: str) -> None:
        """Ask SageMaker to stop the job; a job that already ended is left as it is."""
        # best effort: a job that ended refuses, and the error that led here matters more
        try:
            self.account.client("sagemaker").stop_training_job(TrainingJobName=name)
        except Exception:
            _log.debug("stopping SageMaker training job %s failed", name, exc_info=True)


class _LogFollower:
    """The job's CloudWatch log lines (`/aws/sagemaker/TrainingJobs`, streams named after the
    job), each returned once. Without log access the job still runs; its log stays short."""

    def __init__(self, account: SageMakerAccount, name: str):
        self.account = account
        self.name = name
        self.tokens: dict[str, str | None] = {}
        self.enabled = True

    def new_lines(self) -> list[str]:
        if not self.enabled:
            return []
        from botocore.exceptions import BotoCoreError, ClientError

        from modelci.aws import error_code

        lines: list[str] = []
        logs = self.account.client("logs")
        try:
            streams = logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=self.name
            )["logStreams"]
            for stream in streams:
                stream_name = stream["logStreamName"]
                while True:
                    arguments: dict[str, Any] = {
                        "logGroupName": LOG_GROUP,
                        "logStreamName": stream_name,
                        "startFromHead": True,
                    }
                    if self.tokens.get(stream_name):
                        arguments["nextToken"] = self.tokens[stream_name]
                    page = logs.get_log_events(**arguments)
                    lines += [str(e.get("message", "")).rstrip("\n") for e in page["events"]]
                    token = page.get("nextForwardToken")
                    if token == self.tokens.get(stream_name) or not page["events"]:
                        self.tokens[stream_name] = token
                        break
                    self.tokens[stream_name] = token
        except (ClientError, BotoCoreError) as error:
            if error_code(error)[0] != "ResourceNotFoundException":
                self.enabled = False  # no access to the logs: the job matters, not its log
        return lines
