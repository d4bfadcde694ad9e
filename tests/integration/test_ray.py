"""The Ray backends on a real two-node Ray cluster (a head and a worker node on this machine,
bound to 127.0.0.1): training as Ray jobs, endpoints as Ray Serve applications.

The cluster starts once for the session (`cluster` in tests/integration/conftest.py, shared with
test_ray_rollouts.py) and is stopped by its own process groups. The toy
model needs nothing beyond the standard library, so its runtime environments install nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelci.registry import open_registry
from modelci.registry.base import VersionRecord
from tests.support.cli import CliResult
from tests.support.ports import free_port
from tests.support.ray_cluster import RayCluster
from tests.support.repos import GitRepo
from tests.support.toy import write_toy

pytestmark = [pytest.mark.ray, pytest.mark.slow]

Run = Callable[..., CliResult]
REGISTRY = "sqlite:///.modelci/registry.db"
CLIENTS = 8

TRAIN = """\
import json, os, sys
bias = float(os.environ["SM_HP_BIAS"])
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_") or k == "MODELCI_SEED"}
seen["argv"] = sys.argv[1:]
seen["train_files"] = sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"]))
seen["cwd"] = os.getcwd()
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"bias": bias}, f)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
print("score=0.75")
"""
FAILING = """\
import os
print("loading the data")
with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
    f.write("the training data has no label column")
raise SystemExit(3)
"""
SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = {{ bias = {bias}, epochs = 2 }}
seed = 7
channels = {{ train = "data/toy/train.csv", test = "data/toy/test.csv" }}
metrics = {{ score = "score=([0-9.]+)" }}
resources = {{ {resources} }}

[serve]
handler = "inference.py"
"""
ROW = b"[[1, 2]]"  # the toy model answers 3 + bias


def make_toy(
    repo: GitRepo, *, bias: float = 0.5, train: str = TRAIN, resources: str = "num_cpus = 0.5"
) -> None:
    repo.write("modelci.toml", '[train]\nbackend = "ray"\n\n[deploy]\nbackend = "ray"\n')
    write_toy(repo, SPEC.format(bias=bias, resources=resources), train=train, rows=30)
    repo.commit("toy model")


def versions(root: Path) -> list[VersionRecord]:
    with open_registry(REGISTRY, root) as registry:
        return registry.list_versions("toy")


def train(modelci: Run, repo: GitRepo) -> dict[str, Any]:
    result = modelci("-C", repo.root, "train", "toy", "--json")
    assert result.code == 0, result.stdout + result.stderr
    outcome: dict[str, Any] = result.json()["versions"][0]
    return outcome


# --- training ------------------------------------------------------------------------------


def test_training_runs_as_a_ray_job(
    on_ray: RayCluster, git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    from ray.job_submission import JobSubmissionClient

    from modelci.train.unpacked import materialize
    from modelci.workspace import Workspace

    repo = git_repo()
    make_toy(repo)
    outcome = train(modelci, repo)
    assert outcome["status"] == "ready" and outcome["metrics"] == {"score": 0.75}
    record = versions(repo.root)[0]
    job_id = record.details["ray_job_id"]
    assert job_id.startswith(f"modelci-{record.version}-")
    assert record.details["ray_address"] == on_ray.address
    status = JobSubmissionClient(on_ray.dashboard_url).get_job_status(job_id)
    assert str(status.value) == "SUCCEEDED"

    workspace = Workspace(repo.root)
    assert record.artifact_sha256 and workspace.store().exists(record.artifact_sha256)
    model = materialize(workspace.store(), record.artifact_sha256, repo.root / "unpacked")
    assert json.loads((model / "model.json").read_text()) == {"bias": 0.5}
    seen = json.loads((model / "seen.json").read_text())
    # script mode on the node, relative to where Ray unpacked the job folder
    root = seen["SM_MODEL_DIR"].removesuffix("/model")
    assert seen["cwd"] == f"{root}/code" and not root.startswith(str(repo.root))
    assert seen["argv"] == ["--bias", "0.5", "--epochs", "2"]
    assert seen["SM_CHANNEL_TRAIN"] == f"{root}/input/data/train"
    assert seen["train_files"] == ["train.csv"]
    assert json.loads(seen["SM_CHANNELS"]) == ["test", "train"]
    assert json.loads(seen["SM_HPS"]) == {"bias": 0.5, "epochs": 2}
    assert seen["SM_HP_EPOCHS"] == "2" and seen["MODELCI_SEED"] == "7"
    assert seen["SM_NUM_CPUS"] == "1" and seen["SM_CURRENT_HOST"] == "algo-1"
    log = Path(record.details["job_dir"], "output", "log.txt").read_text()
    assert "score=0.75" in log and "@@modelci" not in log


def test_a_failing_script_is_a_failed_version_with_its_log(
    on_ray: RayCluster, git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo()
    make_toy(repo, train=FAILING)
    result = modelci("-C", repo.root, "train", "toy", "--json")
    assert result.code == 1, result.stdout + result.stderr
    outcome = result.json()["versions"][0]
    assert outcome["status"] == "failed"
    assert outcome["reason"] == "the training data has no label column"
    record = versions(repo.root)[0]
    assert record.status == "failed" and record.details["ray_job_id"].startswith("modelci-")
    log = Path(record.details["job_dir"], "output", "log.txt").read_text()
    assert "loading the data" in log


def test_more_resources_than_the_cluster_has(
    on_ray: RayCluster, git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo()
    make_toy(repo, resources="num_cpus = 64")
    result = modelci("-C", repo.root, "train", "toy")
    assert result.code == 1
    assert on_ray.address in result.stderr and "num_cpus = 64" in result.stderr
    assert "more than any node has" in result.stderr
    assert [r.status for r in versions(repo.root)] == ["failed"]


def test_an_unreachable_cluster_is_named(
    on_ray: RayCluster,
    git_repo: Callable[..., GitRepo],
    modelci: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = git_repo()
    make_toy(repo)
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("MODELCI_RAY_ADDRESS", address)
    monkeypatch.delenv("MODELCI_RAY_DASHBOARD_URL")
    result = modelci("-C", repo.root, "train", "toy", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert address in error["message"] and error["key"] == "ray.address"
    assert versions(repo.root) == []


# --- serving -------------------------------------------------------------------------------


class Load:
    """CLIENTS threads sending requests to an endpoint until stopped; every answer counted."""

    def __init__(self, url: str):
        self.url = url
        self.stopping = threading.Event()
        self.answers: dict[float, int] = {}
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def _client(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stopping.is_set():
                try:
                    answer = client.post(
                        self.url, content=ROW, headers={"content-type": "application/json"}
                    )
                    outcome = (
                        answer.json()["predictions"][0]
                        if answer.status_code == 200
                        else f"{answer.status_code} {answer.text[:200]}"
                    )
                except (httpx.HTTPError, ValueError) as error:
                    outcome = repr(error)
                with self.lock:
                    if isinstance(outcome, float):
                        self.answers[outcome] = self.answers.get(outcome, 0) + 1
                    else:
                        self.failures.append(outcome)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=90)


def test_endpoints_on_ray_serve(
    on_ray: RayCluster, git_repo: Callable[..., GitRepo], modelci: Run, tmp_path: Path
) -> None:
    repo = git_repo()
    make_toy(repo)
    first = train(modelci, repo)["version"]
    deployed = modelci(
        "-C", repo.root, "deploy", "toy", "--env", "staging", "--skip-tests", "--json"
    )
    assert deployed.code == 0, deployed.stdout + deployed.stderr
    url = f"{on_ray.serve_url}/endpoints/toy-staging"
    assert deployed.json()["status"] == "deployed" and deployed.json()["gateway_url"] == url
    body = tmp_path / "row.json"
    body.write_bytes(ROW)
    invoked = modelci("-C", repo.root, "invoke", "toy-staging", "--data", body)
    assert invoked.code == 0 and json.loads(invoked.stdout) == {"predictions": [3.5]}
    metadata = httpx.get(f"{url}/metadata", timeout=10).json()
    assert metadata["version"] == first and metadata["environment"] == "staging"
    assert "modelci_requests_total" in httpx.get(f"{url}/metrics", timeout=10).text

    status = modelci("-C", repo.root, "status", "--json")
    serving = status.json()["models"][0]["environments"]["staging"]["serving"]
    assert serving["status"] == "RUNNING" and serving["version"] == first
    assert serving["replicas"] and {r["state"] for r in serving["replicas"]} == {"RUNNING"}
    assert "ray: healthy (RUNNING)" in modelci("-C", repo.root, "status").stdout

    # a second version rolls over the replicas under load: no request fails
    repo.write("models/toy/model.toml", SPEC.format(bias=1.5, resources="num_cpus = 0.5"))
    repo.commit("bias 1.5")
    second = train(modelci, repo)["version"]
    with Load(f"{url}/invocations") as load:
        updated = modelci(
            "-C", repo.root, "deploy", "toy", "--env", "staging", "--skip-tests", "--json"
        )
    assert updated.code == 0, updated.stdout + updated.stderr
    assert updated.json()["previous_version"] == first
    assert load.failures == []
    assert set(load.answers) <= {3.5, 4.5} and sum(load.answers.values()) > 0
    assert httpx.get(f"{url}/metadata", timeout=10).json()["version"] == second

    back = modelci("-C", repo.root, "rollback", "toy", "--env", "staging", "--json")
    assert back.code == 0, back.stdout + back.stderr
    assert back.json()["version"] == first
    answer = httpx.post(
        f"{url}/invocations", content=ROW, timeout=30, headers={"content-type": "application/json"}
    )
    assert answer.json() == {"predictions": [3.5]}
