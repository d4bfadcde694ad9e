"""SageMaker training and endpoints against the AWS API emulator (`moto_server`): `modelci train`
and `deploy` with `[train]`/`[deploy] backend = "sagemaker"`, set through MODELCI_* variables
as CI would set them, and the same `invoke`, `status` and `history` as locally.

The emulator answers S3, SageMaker, sagemaker-runtime and CloudWatch Logs for real, with these
gaps, each filled by a stand-in named here and hooked into boto3's default session with
botocore's event system (the mechanism botocore's own Stubber uses), so that only that call or
that effect is not the emulator's:

- `fake_training_container`: moto completes a training job at once and runs nothing, so it
  writes no `model.tar.gz` and no log. Right after CreateTrainingJob answers, this stand-in puts
  a tiny stdlib model where SageMaker would (`<S3OutputPath>/<job>/output/model.tar.gz`) and the
  script's log lines into CloudWatch Logs (`/aws/sagemaker/TrainingJobs`, `<job>/algo-1-...`).
- `fake_update_endpoint`: moto has no UpdateEndpoint. This stand-in answers that one call and
  leaves the endpoint as a finished blue/green update would (on the new configuration,
  InService) by re-creating it in the emulator; `fake_update_rolled_back` leaves it as an alarm
  during the canary would (still on the old configuration).
- `fake_describe_training_job_failed`: moto's jobs never fail; this stand-in answers
  DescribeTrainingJob with the emulator's own description turned Failed, with a FailureReason.

- `fake_sagemaker_capture` and `fake_sagemaker_metrics`: the emulator serves no model, so
  SageMaker's data capture writes no file and no ModelLatency is published. These stand-ins
  put capture files where SageMaker writes them (`<DestinationS3Uri>/<endpoint>/<variant>/
  yyyy/mm/dd/hh/...jsonl`, its JSON-lines format) and latencies into CloudWatch, so that
  `capture`, `drift` and `shadow` read them as they read SageMaker's own.

sagemaker-runtime's InvokeEndpoint is the emulator's: it answers from a queue of canned results
that the test fills through moto's documented `/moto-api/static/sagemaker/endpoint-results`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from modelci.deploy.sagemaker import SageMakerDeployer
from modelci.registry import open_registry
from modelci.store import open_store
from modelci.train.artifacts import unpack
from modelci.workspace import Workspace
from tests.support.cli import CliResult
from tests.support.repos import GitRepo
from tests.support.servers import SECRET_ACCESS_KEY
from tests.support.toy import train_script, write_toy

pytestmark = pytest.mark.aws

Run = Callable[..., CliResult]
REGISTRY = "sqlite:///.modelci/registry.db"
ROLE = "arn:aws:iam::123456789012:role/modelci-test"
ACCOUNT = "123456789012"  # moto's default account
_names = itertools.count(1)

TRAIN = train_script()
SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = { bias = 0.5, label = "toy" }
channels = { train = "data/toy/train.csv", test = "data/toy/test.csv" }
metrics = { score = "score=([0-9.]+)" }
timeout = 600

[serve]
handler = "inference.py"
"""
PROJECT = """\
[sagemaker]
max_wait_s = 30
canary = { percent = 25, wait_s = 60 }
"""


def model_tarball(bias: float) -> bytes:
    """What the training script would have packed: `model.json` at the archive's root."""
    content = json.dumps({"bias": bias}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.json")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class SageMakerWorld:
    """The emulator as the tests see it: an admin session (no hooks) to set up and inspect,
    the requests modelci sent (captured from boto3's default session), and the stand-ins."""

    url: str
    bucket: str
    admin: Any
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    training_fails: bool = False
    update_rolls_back: bool = False

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.requests if name == operation]

    def hook(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A fresh default session (boto3's standard chain, read now) carrying the hooks."""
        import boto3

        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events
        events.register("provide-client-params.sagemaker", self._capture)
        events.register("after-call.sagemaker.CreateTrainingJob", self.fake_training_container)
        events.register("before-call.sagemaker.UpdateEndpoint", self.fake_update_endpoint)
        events.register(
            "before-call.sagemaker.DescribeTrainingJob", self.fake_describe_training_job_failed
        )

    def _capture(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests.append((model.name, json.loads(json.dumps(params, default=repr))))

    # --- stand-ins --------------------------------------------------------------------------

    def fake_training_container(self, parsed: dict[str, Any], **_: Any) -> None:
        """Stand in for the training container, which moto does not run: write the model and
        the log where SageMaker's container would, once the job exists."""
        request = self.sent("CreateTrainingJob")[-1]
        job = request["TrainingJobName"]
        output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        bucket, _, prefix = output[len("s3://") :].partition("/")
        key = "/".join(p for p in (prefix, job, "output", "model.tar.gz") if p)
        self.admin.client("s3").put_object(Bucket=bucket, Key=key, Body=model_tarball(0.5))
        logs = self.admin.client("logs")
        group = "/aws/sagemaker/TrainingJobs"
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.create_log_group(logGroupName=group)
        now = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
        stream = f"{job}/algo-1-{now // 1000}"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[
                {"timestamp": now, "message": "training toy"},
                {"timestamp": now + 1, "message": "score=0.75"},
            ],
        )

    def fake_update_endpoint(self, params: dict[str, Any], **_: Any) -> Any:
        """Stand in for UpdateEndpoint, which moto lacks: leave the endpoint as a finished
        blue/green update does (on the new configuration), or, with `update_rolls_back`, as an
        alarm during the canary does (back on the old one)."""
        from botocore.awsrequest import AWSResponse

        body = (
            json.loads(params["body"])
            if isinstance(params.get("body"), str | bytes)
            else params["body"]
        )
        name, config = body["EndpointName"], body["EndpointConfigName"]
        api = self.admin.client("sagemaker")
        arn = api.describe_endpoint(EndpointName=name)["EndpointArn"]
        if not self.update_rolls_back:
            api.delete_endpoint(EndpointName=name)
            api.create_endpoint(EndpointName=name, EndpointConfigName=config)
        return AWSResponse(f"{self.url}/", 200, {}, None), {"EndpointArn": arn}

    def fake_describe_training_job_failed(self, params: dict[str, Any], **_: Any) -> Any:
        """Stand in for DescribeTrainingJob when `training_fails`: the emulator's own answer,
        turned Failed with a FailureReason (moto's jobs always complete)."""
        if not self.training_fails:
            return None  # the emulator answers
        from botocore.awsrequest import AWSResponse

        body = json.loads(params["body"])
        state = self.admin.client("sagemaker").describe_training_job(
            TrainingJobName=body["TrainingJobName"]
        )
        state.pop("ResponseMetadata", None)
        state.update(
            TrainingJobStatus="Failed",
            SecondaryStatus="Failed",
            FailureReason="AlgorithmError: ValueError: C must be positive",
        )
        state.pop("ModelArtifacts", None)
        return AWSResponse(f"{self.url}/", 200, {}, None), state

    # --- the emulator's canned runtime answers ----------------------------------------------

    def queue_answers(self, *bodies: str) -> None:
        """Queue InvokeEndpoint's next answers (moto's documented results API)."""
        results = [
            {
                "Body": b,
                "ContentType": "application/json",
                "InvokedProductionVariant": "AllTraffic",
                "CustomAttributes": "",
            }
            for b in bodies
        ]
        httpx.post(
            f"{self.url}/moto-api/static/sagemaker/endpoint-results",
            json={"account_id": ACCOUNT, "region": "us-east-1", "results": results},
            timeout=10,
        ).raise_for_status()


@pytest.fixture
def world(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> SageMakerWorld:
    """The emulator, a new bucket, the stand-ins hooked in, and the SageMaker settings in the
    MODELCI_* variables (role and bucket, both backends)."""
    import boto3

    admin = boto3.session.Session()
    bucket = f"modelci-sagemaker-{next(_names)}-{id(monkeypatch) % 10000}"
    admin.client("s3").create_bucket(Bucket=bucket)
    found = SageMakerWorld(aws_env, bucket, admin)
    found.hook(monkeypatch)
    monkeypatch.setenv("MODELCI_TRAIN_BACKEND", "sagemaker")
    monkeypatch.setenv("MODELCI_DEPLOY_BACKEND", "sagemaker")
    monkeypatch.setenv("MODELCI_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("MODELCI_SAGEMAKER_BUCKET", f"s3://{bucket}/ci")
    monkeypatch.setenv("MODELCI_SAGEMAKER_ALARMS", "toy-5xx,toy-latency")
    return found


@dataclass
class Toy:
    repo: GitRepo
    name: str

    @property
    def root(self) -> Path:
        return self.repo.root


@pytest.fixture
def toy(git_repo: Callable[..., GitRepo], shared_sagemaker_envs: Path) -> Toy:
    """A repository with one small model, named anew for each test: endpoints live in the
    emulator for the whole session."""
    repo = git_repo()
    name = f"smtoy{next(_names)}"
    repo.write("modelci.toml", PROJECT)
    write_toy(repo, SPEC, name=name, train=TRAIN)
    repo.commit("toy model")
    (repo.root / ".modelci").mkdir()
    (repo.root / ".modelci" / "envs").symlink_to(shared_sagemaker_envs, target_is_directory=True)
    return Toy(repo, name)


@pytest.fixture(scope="module")
def shared_sagemaker_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of model environments for the module: every toy's is the same."""
    return tmp_path_factory.mktemp("sagemaker-envs")


def _objects(world: SageMakerWorld) -> list[str]:
    listed = world.admin.client("s3").list_objects_v2(Bucket=world.bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _secret_nowhere(toy: Toy, *results: CliResult) -> None:
    for result in results:
        assert SECRET_ACCESS_KEY not in result.stdout + result.stderr
    for path in (toy.root / ".modelci").rglob("*"):
        if path.is_file() and not path.is_symlink() and "envs" not in path.parts:
            assert SECRET_ACCESS_KEY.encode() not in path.read_bytes(), path


# --- training ---------------------------------------------------------------------------------


def test_train_on_sagemaker(world: SageMakerWorld, toy: Toy, modelci: Run, tmp_path: Path) -> None:
    result = modelci("-C", toy.root, "train", toy.name, "--json")
    assert result.code == 0, result.stdout + result.stderr
    [outcome] = result.json()["versions"]
    assert outcome["status"] == "ready"
    assert outcome["version"] == f"{toy.name}-{toy.repo.sha()[:12]}"
    assert outcome["metrics"] == {"score": 0.75}  # the job's log, from CloudWatch Logs

    [request] = world.sent("CreateTrainingJob")
    job = request["TrainingJobName"]
    assert job.startswith(outcome["version"] + "-") and len(job) <= 63
    prefix = f"s3://{world.bucket}/ci/{job}"
    submit = f"{prefix}/source/sourcedir.tar.gz"
    # hyperparameters JSON-encoded, as SageMaker's SDK sends them
    assert request["HyperParameters"] == {
        "bias": "0.5",
        "label": '"toy"',
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": json.dumps(submit),
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": json.dumps(job),
        "sagemaker_region": '"us-east-1"',
    }
    spec = request["AlgorithmSpecification"]
    assert spec["MetricDefinitions"] == [{"Name": "score", "Regex": "score=([0-9.]+)"}]
    assert spec["TrainingImage"] == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    assert spec["TrainingInputMode"] == "File"
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.large"

    # the emulator holds the job as it was asked for (moto rewrites only MetricDefinitions)
    described = world.admin.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["HyperParameters"] == request["HyperParameters"]
    assert described["RoleArn"] == ROLE
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in described["InputDataConfig"]
    } == {"train": f"{prefix}/input/train/", "test": f"{prefix}/input/test/"}
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{world.bucket}/ci"

    keys = _objects(world)
    assert f"ci/{job}/input/train/train.csv" in keys and f"ci/{job}/input/test/test.csv" in keys
    source = world.admin.client("s3").get_object(
        Bucket=world.bucket, Key=f"ci/{job}/source/sourcedir.tar.gz"
    )
    with tarfile.open(fileobj=io.BytesIO(source["Body"].read())) as archive:
        assert sorted(archive.getnames()) == [
            "inference.py",
            "model.toml",
            "requirements.txt",
            "train.py",
        ]  # files at the root, as the SDK

    with open_registry(REGISTRY, toy.root) as registry:
        record = registry.get_version(outcome["version"])
        assert record is not None and record.status == "ready"
        assert record.details["training_job_arn"] == described["TrainingJobArn"]
        assert record.details["training_job_name"] == job
        assert record.details["model_data_url"] == f"{prefix}/output/model.tar.gz"
    archive = open_store(".modelci/artifacts", toy.root).get_file(
        outcome["artifact"]["sha256"], tmp_path / "model.tar.gz"
    )
    unpacked = unpack(archive, tmp_path / "unpacked")
    assert json.loads((unpacked / "model.json").read_text()) == {"bias": 0.5}
    human = modelci("-C", toy.root, "train", toy.name, "--force")
    assert human.code == 0, human.stderr
    assert "[sagemaker] created arn:aws:sagemaker:us-east-1" in human.stderr  # progress
    assert len(world.sent("CreateTrainingJob")) == 2
    log = Path(outcome["job_dir"], "output", "log.txt").read_text()
    assert f"training job {job}" in log and "score=0.75" in log
    _secret_nowhere(toy, result, human)


def test_failed_training_job(world: SageMakerWorld, toy: Toy, modelci: Run) -> None:
    world.training_fails = True
    result = modelci("-C", toy.root, "train", toy.name, "--json")
    assert result.code == 1
    [outcome] = result.json()["versions"]
    assert outcome["status"] == "failed"
    assert outcome["reason"] == "AlgorithmError: ValueError: C must be positive"
    with open_registry(REGISTRY, toy.root) as registry:
        record = registry.get_version(outcome["version"])
        assert record is not None and record.status == "failed"
        assert record.artifact_uri is None
        assert record.details["training_job_arn"].endswith(record.details["training_job_name"])
        assert registry.events(toy.name)[0].kind == "train_failed"
    human = modelci("-C", toy.root, "train", toy.name)
    assert human.code == 1 and "C must be positive" in human.stderr


# --- bad configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["no-role", "no-bucket-setting", "missing-bucket", "no-credentials", "unreachable"]
)
def test_bad_configuration_stops_before_anything(
    world: SageMakerWorld, toy: Toy, modelci: Run, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    expected_code, key, words = {
        "no-role": (2, "sagemaker.role_arn", ["MODELCI_SAGEMAKER_ROLE_ARN"]),
        "no-bucket-setting": (2, "sagemaker.bucket", ["MODELCI_SAGEMAKER_BUCKET"]),
        "missing-bucket": (
            2,
            "sagemaker.bucket",
            ["'modelci-nowhere'", "does not exist", world.url],
        ),
        "no-credentials": (2, None, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"]),
        "unreachable": (1, None, ["http://127.0.0.1:9", "did not answer"]),
    }[case]
    if case == "no-role":
        monkeypatch.delenv("MODELCI_SAGEMAKER_ROLE_ARN")
    elif case == "no-bucket-setting":
        monkeypatch.delenv("MODELCI_SAGEMAKER_BUCKET")
    elif case == "missing-bucket":
        monkeypatch.setenv("MODELCI_SAGEMAKER_BUCKET", "s3://modelci-nowhere/ci")
    elif case == "no-credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        world.hook(monkeypatch)  # a default session that reads the chain anew
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing there
        world.hook(monkeypatch)
    before = _objects(world) if case != "unreachable" else []

    for command in (("train", toy.name), ("deploy", toy.name, "--env", "staging", "--skip-tests")):
        result = modelci("-C", toy.root, *command, "--json")
        assert result.code == expected_code, result.stdout
        error = result.json()["error"]
        assert error["key"] == key, error
        for word in words:
            assert word in error["message"], error
        _secret_nowhere(toy, result)

    # nothing uploaded, no job, no version recorded, no endpoint pointer moved
    assert world.sent("CreateTrainingJob") == []
    if case != "unreachable":
        assert _objects(world) == before
    with open_registry(REGISTRY, toy.root) as registry:
        assert registry.list_versions(toy.name) == []
        assert registry.get_pointer(toy.name, "staging") is None


# --- endpoints --------------------------------------------------------------------------------


def _train_new_version(toy: Toy, modelci: Run, bias: str) -> str:
    toy.repo.write(f"models/{toy.name}/model.toml", SPEC.replace("bias = 0.5", f"bias = {bias}"))
    toy.repo.commit(f"bias {bias}")
    result = modelci("-C", toy.root, "train", toy.name, "--json")
    assert result.code == 0, result.stdout + result.stderr
    version: str = result.json()["versions"][0]["version"]
    return version


def _deploy(toy: Toy, modelci: Run, *extra: str) -> dict[str, Any]:
    result = modelci(
        "-C", toy.root, "deploy", toy.name, "--env", "staging", "--skip-tests", "--json", *extra
    )
    _secret_nowhere(toy, result)
    outcome: dict[str, Any] = result.json()
    assert result.code == (0 if outcome["status"] in ("deployed", "unchanged") else 1)
    return outcome


def test_endpoint_create_update_invoke_rollback(
    world: SageMakerWorld, toy: Toy, modelci: Run, tmp_path: Path
) -> None:
    api = world.admin.client("sagemaker")
    endpoint = f"{toy.name}-staging"
    first = _train_new_version(toy, modelci, "0.5")
    world.queue_answers('{"predictions": [1.5]}')  # the smoke request's answer

    created = _deploy(toy, modelci)
    assert created["status"] == "deployed", created
    assert created["gateway_url"] == f"{world.url}/endpoints/{endpoint}/invocations"
    model = api.describe_model(ModelName=first)
    assert model["ExecutionRoleArn"] == ROLE
    container = model["PrimaryContainer"]
    with open_registry(REGISTRY, toy.root) as registry:
        record = registry.get_version(first)
        assert record is not None and record.artifact_sha256 is not None
    assert container["ModelDataUrl"] == (
        f"s3://{world.bucket}/ci/models/{record.artifact_sha256}/model.tar.gz"
    )
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == (
        f"s3://{world.bucket}/ci/code/{first}/sourcedir.tar.gz"
    )
    stored = world.admin.client("s3").get_object(
        Bucket=world.bucket, Key=f"ci/models/{record.artifact_sha256}/model.tar.gz"
    )
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == record.artifact_sha256
    config = api.describe_endpoint_config(EndpointConfigName=first)
    assert [v["ModelName"] for v in config["ProductionVariants"]] == [first]
    state = api.describe_endpoint(EndpointName=endpoint)
    assert state["EndpointStatus"] == "InService" and state["EndpointConfigName"] == first
    [create] = world.sent("CreateEndpoint")
    assert create == {
        "EndpointName": endpoint,
        "EndpointConfigName": first,
        "Tags": [{"Key": "modelci:version", "Value": first}],
    }
    assert world.sent("UpdateEndpoint") == []

    # a second version goes through UpdateEndpoint, blue/green with a canary (fake_update_endpoint)
    second = _train_new_version(toy, modelci, "1.5")
    updated = _deploy(toy, modelci)  # moto answers the same smoke request as before
    assert updated["status"] == "deployed" and updated["previous_version"] == first, updated
    [update] = world.sent("UpdateEndpoint")
    assert update == {
        "EndpointName": endpoint,
        "EndpointConfigName": second,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                    "WaitIntervalInSeconds": 60,
                },
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": 600,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": "toy-5xx"}, {"AlarmName": "toy-latency"}]
            },
        },
    }
    assert api.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == second
    described = SageMakerDeployer(Workspace(toy.root)).describe(endpoint)
    assert described is not None
    assert (described["version"], described["healthy"], described["status"]) == (
        second,
        True,
        "InService",
    )

    # invoke: the emulator's canned answer, through sagemaker-runtime
    world.queue_answers('{"predictions": [7.5]}')
    body = tmp_path / "request.json"
    body.write_text("[[1, 2, 3]]")
    invoked = modelci("-C", toy.root, "invoke", endpoint, "--data", body, "--json")
    assert invoked.code == 0, invoked.stdout + invoked.stderr
    assert invoked.json() == {
        "endpoint": endpoint,
        "status": 200,
        "content_type": "application/json",
        "body": '{"predictions": [7.5]}',
        "body_b64": None,
    }
    assert modelci("-C", toy.root, "invoke", endpoint, "--data", body).stdout == (
        '{"predictions": [7.5]}\n'
    )  # the same request: moto answers it the same

    # status and history: the same documents as for local endpoints, with what SageMaker says
    status = modelci("-C", toy.root, "status", "--json").json()
    [entry] = [m for m in status["models"] if m["model"] == toy.name]
    assert set(entry) == {"model", "environments", "latest", "retired"}
    staging = entry["environments"]["staging"]
    assert staging["version"] == second
    assert set(staging) == {
        "version",
        "commit",
        "time",
        "actor",
        "serving",
        "endpoint",
        "tests",
        "metrics",
    }
    assert staging["serving"]["version"] == second and staging["serving"]["healthy"] is True
    assert staging["endpoint"]["health"] == "healthy"
    assert staging["endpoint"]["url"] == staging["serving"]["url"]
    events = modelci("-C", toy.root, "history", toy.name, "--json").json()["events"]
    assert [e["kind"] for e in events][:4] == ["deploy", "train", "deploy", "train"]
    assert all(
        set(e)
        == {
            "id",
            "time",
            "kind",
            "model",
            "version",
            "environment",
            "from_version",
            "to_version",
            "commit",
            "tag",
            "actor",
            "ci_url",
            "details",
        }
        for e in events
    )

    # rollback: UpdateEndpoint back to the first version's configuration, which still exists
    rolled = modelci("-C", toy.root, "rollback", toy.name, "--env", "staging", "--json")
    assert rolled.code == 0, rolled.stdout + rolled.stderr
    assert api.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == first
    assert [u["EndpointConfigName"] for u in world.sent("UpdateEndpoint")] == [second, first]
    assert len(world.sent("CreateModel")) == 2  # the first version's model was reused
    _secret_nowhere(toy, invoked, rolled)


def test_alarm_rolls_the_update_back(world: SageMakerWorld, toy: Toy, modelci: Run) -> None:
    """An alarm during the canary: SageMaker leaves the endpoint on the old configuration
    (fake_update_endpoint with update_rolls_back); the deploy fails and the registry points
    back at the version that serves."""
    endpoint = f"{toy.name}-staging"
    first = _train_new_version(toy, modelci, "0.5")
    world.queue_answers('{"predictions": [1.5]}')
    assert _deploy(toy, modelci)["status"] == "deployed"
    second = _train_new_version(toy, modelci, "1.5")
    world.update_rolls_back = True
    outcome = _deploy(toy, modelci)
    assert outcome["status"] == "rolled_back" and outcome["version"] == second, outcome
    assert f"SageMaker rolled {endpoint} back to {first}" in outcome["reason"]
    state = world.admin.client("sagemaker").describe_endpoint(EndpointName=endpoint)
    assert state["EndpointConfigName"] == first and state["EndpointStatus"] == "InService"
    with open_registry(REGISTRY, toy.root) as registry:
        pointer = registry.get_pointer(toy.name, "staging")
        assert pointer is not None and pointer.version == first
        kinds = [e.kind for e in registry.events(toy.name)]
        assert kinds[:3] == ["rollback", "deploy_failed", "deploy"]


PER_MODEL = """
[sagemaker]
instance_type = "ml.c5.xlarge"
instance_count = 2
volume_size_gb = 50
endpoint_instance_type = "ml.c5.large"
endpoint_instance_count = 3
spot = true
spot_max_wait_s = 1200
checkpoint_s3_uri = "s3://checkpoints/toy"
subnets = ["subnet-1", "subnet-2"]
security_group_ids = ["sg-1"]
kms_key_id = "alias/modelci"
environment = { FEATURE_FLAG = "on" }
"""


def test_per_model_settings_reach_every_request(
    world: SageMakerWorld, toy: Toy, modelci: Run
) -> None:
    capture = "\n[serve.capture]\npercent = 20\n"
    toy.repo.write(f"models/{toy.name}/model.toml", SPEC + PER_MODEL + capture)
    toy.repo.commit("per-model sagemaker settings")
    trained = modelci("-C", toy.root, "train", toy.name, "--json")
    assert trained.code == 0, trained.stdout + trained.stderr
    version = trained.json()["versions"][0]["version"]
    [job] = world.sent("CreateTrainingJob")
    assert job["ResourceConfig"] == {
        "InstanceType": "ml.c5.xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 50,
        "VolumeKmsKeyId": "alias/modelci",
    }
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200}
    assert job["CheckpointConfig"]["S3Uri"] == "s3://checkpoints/toy"
    assert job["VpcConfig"] == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert job["OutputDataConfig"]["KmsKeyId"] == "alias/modelci"
    assert job["Environment"]["FEATURE_FLAG"] == "on" and job["Environment"]["MODELCI_SEED"]

    world.queue_answers('{"predictions": [1.5]}')  # the smoke request's answer
    assert _deploy(toy, modelci)["status"] == "deployed"
    [model] = world.sent("CreateModel")
    assert model["VpcConfig"] == job["VpcConfig"]
    assert model["PrimaryContainer"]["Environment"]["FEATURE_FLAG"] == "on"
    [config] = world.sent("CreateEndpointConfig")
    assert config["KmsKeyId"] == "alias/modelci"
    # [serve.capture] as SageMaker's own data capture
    data_capture = config["DataCaptureConfig"]
    assert (data_capture["EnableCapture"], data_capture["InitialSamplingPercentage"]) == (True, 20)
    assert data_capture["DestinationS3Uri"].endswith("/capture")
    assert data_capture["DestinationS3Uri"].startswith("s3://")
    assert data_capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    [variant] = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.large", 3)
    assert variant["ModelName"] == version


def test_per_model_settings_are_checked(toy: Toy, modelci: Run) -> None:
    for bad, key in (
        ('[sagemaker]\nsubnets = ["subnet-1"]\n', "sagemaker"),
        ("[sagemaker]\nspot = true\nspot_max_wait_s = 60\n", "sagemaker.spot_max_wait_s"),
        ('[sagemaker]\ncheckpoint_s3_uri = "/tmp/x"\n', "sagemaker.checkpoint_s3_uri"),
    ):
        toy.repo.write(f"models/{toy.name}/model.toml", SPEC + "\n" + bad)
        result = modelci("-C", toy.root, "validate", "--json")
        assert result.code == 1, (bad, result.stdout)  # a bad model.toml fails its model's row
        [row] = result.json()["models"]
        assert row["error"]["key"] == key, (bad, result.stdout)
        assert row["error"]["file"] == f"models/{toy.name}/model.toml"


ROLLOUT_ENVIRONMENTS = """
[environments.staging]
suffix = "-staging"
rollout = { termination_wait_seconds = 30, bake_seconds = 45 }

[environments.production]
suffix = ""
"""
ROLLOUT_MODEL = """
[deploy.rollout]
strategy = "linear"
linear_step_percent = 20
bake_seconds = 120
max_error_rate = 0.02
max_model_error_rate = 0.05
max_p99_ms = 250
"""


def test_rollout_settings_become_the_deployment_config_and_alarms(
    world: SageMakerWorld, toy: Toy, modelci: Run
) -> None:
    """`[deploy.rollout]` (the environment's keys under the model's) maps onto UpdateEndpoint's
    blue/green DeploymentConfig, each alarm a CloudWatch alarm that auto-rollback watches."""
    toy.repo.write("modelci.toml", PROJECT + ROLLOUT_ENVIRONMENTS)
    endpoint = f"{toy.name}-staging"
    _train_new_version(toy, modelci, "0.5")
    world.queue_answers('{"predictions": [1.5]}')
    assert _deploy(toy, modelci)["status"] == "deployed"
    toy.repo.write(
        f"models/{toy.name}/model.toml",
        SPEC.replace("bias = 0.5", "bias = 1.5") + ROLLOUT_MODEL,
    )
    toy.repo.commit("bias 1.5, linear rollouts")
    trained = modelci("-C", toy.root, "train", toy.name, "--json")
    assert trained.code == 0, trained.stdout + trained.stderr
    second = trained.json()["versions"][0]["version"]
    outcome = _deploy(toy, modelci)
    assert outcome["status"] == "deployed" and outcome["version"] == second, outcome
    names = {
        key: f"modelci-{endpoint}-{key}"
        for key in ("max-error-rate", "max-model-error-rate", "max-p99-ms")
    }
    [update] = world.sent("UpdateEndpoint")
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                "WaitIntervalInSeconds": 120,
            },
            "TerminationWaitInSeconds": 30,
            "MaximumExecutionTimeoutInSeconds": 600,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": "toy-5xx"},
                {"AlarmName": "toy-latency"},
                *({"AlarmName": names[k]} for k in names),
            ]
        },
    }
    cloudwatch = world.admin.client("cloudwatch")
    alarms = {
        a["AlarmName"]: a
        for a in cloudwatch.describe_alarms(AlarmNames=list(names.values()))["MetricAlarms"]
    }
    assert set(alarms) == set(names.values())
    errors = alarms[names["max-error-rate"]]
    assert (errors["MetricName"], errors["Statistic"], errors["Threshold"]) == (
        "Invocation5XXErrors",
        "Average",
        0.02,
    )
    assert {d["Name"]: d["Value"] for d in errors["Dimensions"]} == {
        "EndpointName": endpoint,
        "VariantName": "AllTraffic",
    }
    model_errors = alarms[names["max-model-error-rate"]]
    assert (model_errors["MetricName"], model_errors["Threshold"]) == (
        "InvocationModelErrors",
        0.05,
    )
    # a rollback returns all at once, whatever the rollout of deploys
    rolled = modelci("-C", toy.root, "rollback", toy.name, "--env", "staging", "--json")
    assert rolled.code == 0, rolled.stdout + rolled.stderr
    back = world.sent("UpdateEndpoint")[-1]["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert back["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": 0,
    }
    latency = alarms[names["max-p99-ms"]]
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == (
        "ModelLatency",
        "p99",
        250_000.0,
    )


# --- shadow variants, and SageMaker's own capture -----------------------------------------------


def _shadow(toy: Toy, modelci: Run, *extra: str) -> dict[str, Any]:
    result = modelci("-C", toy.root, "deploy", toy.name, "--env", "staging", "--json", *extra)
    _secret_nowhere(toy, result)
    outcome: dict[str, Any] = result.json()
    assert result.code == (1 if outcome["status"] == "failed" else 0), result.stderr
    return outcome


def test_shadow_maps_onto_shadow_production_variants_and_stops(
    world: SageMakerWorld, toy: Toy, modelci: Run
) -> None:
    """`deploy --shadow` moves the endpoint to a configuration with the live version as its
    production variant and the candidate as its shadow variant, the share as the shadow's
    weight against the production variant's, data capture on both; `--shadow --stop` moves it
    back. moto accepts and ignores ShadowProductionVariants, so the request as sent is checked,
    as the rollout tests check DeploymentConfig."""
    endpoint = f"{toy.name}-staging"
    first = _train_new_version(toy, modelci, "0.5")
    world.queue_answers('{"predictions": [1.5]}')
    assert _deploy(toy, modelci)["status"] == "deployed"
    second = _train_new_version(toy, modelci, "1.5")

    started = _shadow(toy, modelci, "--shadow", "--percent", "25", "--version", second)
    assert (started["status"], started["version"], started["live_version"]) == (
        "shadowing",
        second,
        first,
    ), started
    assert started["percent"] == 25 and started["url"].endswith(
        f"/endpoints/{endpoint}/invocations"
    )
    config = world.sent("CreateEndpointConfig")[-1]
    name = config["EndpointConfigName"]
    assert name == f"{first}-shadow25-{second}"
    assert config == {
        "EndpointConfigName": name,
        "Tags": [
            {"Key": "modelci:version", "Value": first},
            {"Key": "modelci:shadow", "Value": second},
        ],
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": first,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
        "ShadowProductionVariants": [
            {
                "VariantName": "Shadow",
                "ModelName": second,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 0.25,
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{world.bucket}/ci/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        },
    }
    assert world.sent("UpdateEndpoint")[-1] == {
        "EndpointName": endpoint,
        "EndpointConfigName": name,
    }
    api = world.admin.client("sagemaker")
    assert api.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == name
    described = SageMakerDeployer(Workspace(toy.root)).describe(endpoint)
    assert described is not None and described["version"] == first  # the live version serves
    with open_registry(REGISTRY, toy.root) as registry:
        [shadow] = registry.shadows(toy.name)
        assert (shadow.environment, shadow.version, shadow.percent) == ("staging", second, 25)
        pointer = registry.get_pointer(toy.name, "staging")
        assert pointer is not None and pointer.version == first

    # a deploy while the shadow runs: the new live version, and the shadow goes on beside it
    third = _train_new_version(toy, modelci, "2.5")
    assert _deploy(toy, modelci, "--version", third)["status"] == "deployed"
    assert [u["EndpointConfigName"] for u in world.sent("UpdateEndpoint")[-2:]] == [
        third,
        f"{third}-shadow25-{second}",
    ]
    kept = world.sent("CreateEndpointConfig")[-1]
    assert [v["ModelName"] for v in kept["ProductionVariants"]] == [third]
    assert [v["ModelName"] for v in kept["ShadowProductionVariants"]] == [second]

    stopped = _shadow(toy, modelci, "--shadow", "--stop")
    assert (stopped["status"], stopped["version"]) == ("stopped", second), stopped
    assert world.sent("UpdateEndpoint")[-1] == {
        "EndpointName": endpoint,
        "EndpointConfigName": third,
    }
    assert api.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == third
    with open_registry(REGISTRY, toy.root) as registry:
        assert registry.shadows(toy.name) == []
        kinds = [e.kind for e in registry.events(toy.name)]
        assert kinds[:4] == ["shadow_end", "deploy", "train", "shadow"]
    again = _shadow(toy, modelci, "--shadow", "--stop")
    assert again["status"] == "none" and len(world.sent("UpdateEndpoint")) == 4


CAPTURED_ROWS = 300


def captured_features(i: int) -> list[float]:
    """Training row i's features: `a` categorical (3 values), `b` numerical."""
    return [i % 3, (i * 37) % 101 / 10]


def captured_table(rows: int) -> str:
    return "id,a,b,label\n" + "".join(
        f"{i},{captured_features(i)[0]},{captured_features(i)[1]},{i % 2}\n" for i in range(rows)
    )


def capture_record(rows: list[list[float]], answers: list[float], event: str, at: float) -> str:
    """One record as SageMaker's data capture writes it (a CSV request, a JSON answer, the
    inference time to the millisecond)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": "\n".join(",".join(f"{v:g}" for v in row) for row in rows),
                    "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": json.dumps({"predictions": answers}),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {"eventId": event, "inferenceTime": stamp},
            "eventVersion": "0",
        }
    )


def fake_sagemaker_capture(
    world: SageMakerWorld, endpoint: str, variant: str, lines: list[str], at: float
) -> str:
    """Stand in for SageMaker's data capture, which the emulator does not run (it serves no
    model): one file of records where SageMaker writes them,
    `<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-fff>-<uuid>.jsonl`."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(at))
    name = time.strftime("%M-%S", time.gmtime(at)) + f"-{int(at * 1000) % 1000:03d}-{uuid4()}"
    key = f"ci/capture/{endpoint}/{variant}/{hour}/{name}.jsonl"
    body = "".join(line + "\n" for line in lines).encode()
    world.admin.client("s3").put_object(Bucket=world.bucket, Key=key, Body=body)
    return key


def fake_sagemaker_metrics(
    world: SageMakerWorld, endpoint: str, variant: str, microseconds: list[float]
) -> None:
    """Stand in for the ModelLatency SageMaker publishes per variant (no model runs here)."""
    world.admin.client("cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "ModelLatency",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": variant},
                ],
                "Value": value,
                "Unit": "Microseconds",
            }
            for value in microseconds
        ],
    )


def test_capture_drift_and_shadow_read_sagemakers_capture(
    world: SageMakerWorld, toy: Toy, modelci: Run
) -> None:
    """`capture`, `drift` and `shadow` read the files SageMaker's data capture writes for the
    endpoint (put there by fake_sagemaker_capture): each variant's records belong to the
    version it served then, a mirrored request's two records pair by their event id."""
    import random

    endpoint = f"{toy.name}-staging"
    toy.repo.write("data/toy/train.csv", captured_table(CAPTURED_ROWS))
    spec = SPEC + '\n[serve.capture]\npercent = 100\ncolumns = ["a", "b"]\n'
    toy.repo.write(f"models/{toy.name}/model.toml", spec)
    toy.repo.commit("a table to compare with, captured")
    first = modelci("-C", toy.root, "train", toy.name, "--json").json()["versions"][0]["version"]
    world.queue_answers('{"predictions": [1.5]}')
    assert _deploy(toy, modelci)["status"] == "deployed"
    toy.repo.write(f"models/{toy.name}/model.toml", spec.replace("bias = 0.5", "bias = 1.5"))
    toy.repo.commit("bias 1.5")
    second = modelci("-C", toy.root, "train", toy.name, "--json").json()["versions"][0]["version"]
    assert second != first
    started = _shadow(toy, modelci, "--shadow", "--percent", "50", "--version", second)
    assert started["status"] == "shadowing", started

    # 30 requests of 3 training-like rows; SageMaker mirrored every other one (50 %)
    sampler = random.Random(7)
    rows = [captured_features(i) for i in sampler.sample(range(CAPTURED_ROWS), 90)]
    requests = [rows[i : i + 3] for i in range(0, 90, 3)]
    now = time.time()
    live = [
        capture_record(r, [sum(row) + 0.5 for row in r], f"event-{n}", now)
        for n, r in enumerate(requests)
    ]
    mirrored = [
        capture_record(r, [sum(row) + 1.5 for row in r], f"event-{n}", now + 0.2)
        for n, r in enumerate(requests)
        if n % 2 == 0
    ]
    fake_sagemaker_capture(world, endpoint, "AllTraffic", live[:20], now)
    fake_sagemaker_capture(world, endpoint, "AllTraffic", live[20:], now)
    shadow_key = fake_sagemaker_capture(world, endpoint, "Shadow", mirrored, now)
    fake_sagemaker_metrics(world, endpoint, "AllTraffic", [2000.0, 4000.0])
    fake_sagemaker_metrics(world, endpoint, "Shadow", [9000.0])

    listed = modelci("-C", toy.root, "capture", toy.name, "--env", "staging", "--json")
    assert listed.code == 0, listed.stdout + listed.stderr
    files = listed.json()["files"]
    assert sorted((f["variant"], f["version"]) for f in files) == [
        ("AllTraffic", first),
        ("AllTraffic", first),
        ("Shadow", second),
    ]
    assert f"ci/{next(f['name'] for f in files if f['variant'] == 'Shadow')}" == shadow_key
    records = modelci(
        "-C",
        toy.root,
        "capture",
        toy.name,
        "--env",
        "staging",
        "--records",
        "--json",
        "--version",
        second,
    ).json()["records"]
    assert len(records) == len(mirrored)
    assert {r["eventMetadata"]["eventId"] for r in records} == {
        f"event-{n}" for n in range(0, 30, 2)
    }

    # training-like rows: no drift, on the live version's records only
    passed = modelci("-C", toy.root, "drift", toy.name, "--env", "staging", "--json")
    assert passed.code == 0, passed.stdout + passed.stderr
    report = passed.json()
    assert (report["version"], report["records"], report["rows"]) == (first, 30, 90)
    assert [(c["column"], c["test"], c["drifted"]) for c in report["columns"]] == [
        ("a", "chi_squared", False),
        ("b", "ks", False),
    ]

    # the shadow: 15 pairs, every prediction off by the bias, latency from CloudWatch
    shadow = modelci("-C", toy.root, "shadow", toy.name, "--env", "staging", "--json")
    assert shadow.code == 0, shadow.stdout + shadow.stderr
    document = shadow.json()
    assert (document["version"], document["running"], document["percent"]) == (second, True, 50)
    assert document["session"] == started["event"] and document["live_versions"] == [first]
    assert (document["pairs"], document["predictions"], document["differing"]) == (15, 45, 45)
    assert document["kind"] == "numbers" and document["disagreement"] == 1.0
    assert document["unpaired"] == {"live": 15, "candidate": 0}
    paired_rows = [row for n, r in enumerate(requests) if n % 2 == 0 for row in r]
    largest = max(1.0 / (sum(row) + 1.5) for row in paired_rows)
    assert document["relative_error"]["max"] == pytest.approx(largest)
    latency = document["latency_ms"]
    assert (latency["live"]["mean"], latency["live"]["max"], latency["live"]["requests"]) == (
        3.0,
        4.0,
        2,
    )
    assert latency["candidate"]["mean"] == 9.0
    human = modelci("-C", toy.root, "shadow", toy.name, "--env", "staging")
    assert human.code == 0 and "unpaired records: live 15, candidate 0" in human.stdout
    # the shadow_disagreement gate judges the same pairs
    gate = '\n[gates]\nshadow_disagreement = "<= 0.01"\n'
    toy.repo.write(f"models/{toy.name}/model.toml", spec.replace("bias = 0.5", "bias = 1.5") + gate)
    gated = modelci("-C", toy.root, "shadow", toy.name, "--env", "staging", "--json")
    assert gated.code == 1, gated.stdout + gated.stderr
    assert gated.json()["gate"]["passed"] is False and gated.json()["gate"]["value"] == 1.0

    # shifted rows two minutes later: drift since then, exit 1
    shifted = [[a + 3, b + 5] for a, b in rows]
    later = [
        capture_record(shifted[i : i + 3], [0.0] * 3, f"late-{i}", now + 120)
        for i in range(0, 90, 3)
    ]
    fake_sagemaker_capture(world, endpoint, "AllTraffic", later, now + 120)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60))
    failed = modelci(
        "-C", toy.root, "drift", toy.name, "--env", "staging", "--since", since, "--json"
    )
    assert failed.code == 1, failed.stdout + failed.stderr
    drifted = failed.json()
    assert drifted["drifted"] and drifted["rows"] == 90
    assert [(c["column"], c["drifted"]) for c in drifted["columns"]] == [("a", True), ("b", True)]
