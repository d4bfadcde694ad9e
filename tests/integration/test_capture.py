"""Data capture and drift end to end: a toy model trained for real on a CSV channel, served by
the endpoint host (beside the checkout, and on a host with no checkout following a shared
registry), requests over real HTTP on 127.0.0.1, the capture files read back from the store
as SageMaker's format, and `modelci drift` on them, and the drift gate wherever a version
moves on (`promote`, `deploy --env`, `release`)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import CliResult
from tests.support.hosts import Hosts, host_url
from tests.support.repos import GitRepo
from tests.support.team import start_host
from tests.support.toy import INFERENCE, train_script
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]

SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = { bias = 0.5 }
channels = { train = "data/toy/train.csv", test = "data/toy/test.csv" }
metrics = { score = "score=([0-9.]+)" }
sample = { fraction = 0.5, key = "id" }

[serve]
handler = "inference.py"
capture = { percent = 100 }

[gates]
drift = "< 0.5"
"""
ROWS = 300
FILE = re.compile(
    r"capture/(?P<endpoint>[a-z-]+)/(?P<version>toy-[0-9a-f]{12})/"
    r"\d{4}/\d\d/\d\d/\d\d/[0-9a-f]{32}\.jsonl"
)


def features(i: int) -> list[float]:
    """Training row i's features: `a` categorical (3 values), `b` numerical."""
    return [i % 3, (i * 37) % 101 / 10]


def table(rows: int) -> str:
    return "id,a,b,label\n" + "".join(
        f"{i},{features(i)[0]},{features(i)[1]},{i % 2}\n" for i in range(rows)
    )


def toy_repository(repo: GitRepo) -> None:
    repo.write(".gitignore", ".modelci/\n")
    repo.write("models/toy/model.toml", SPEC)
    repo.write("models/toy/train.py", train_script())
    repo.write("models/toy/inference.py", INFERENCE)
    repo.write("models/toy/requirements.txt", "")
    repo.write("data/toy/train.csv", table(ROWS))
    repo.write("data/toy/test.csv", table(40))
    repo.commit("toy with data capture")


def linked_envs(root: Path, envs: Path) -> None:
    (root / ".modelci").mkdir(parents=True, exist_ok=True)
    (root / ".modelci" / "envs").symlink_to(envs, target_is_directory=True)


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, result.stdout + result.stderr
    return result


def send(url: str, picked: list[list[float]], per_request: int = 3) -> list[bytes]:
    """POST the rows, `per_request` a request, as JSON (and every fourth request as CSV); the
    bodies sent, each answered with one prediction per row."""
    bodies = []
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(picked), per_request):
            rows = picked[start : start + per_request]
            if (start // per_request) % 4 == 3:
                body = "".join(f"{a},{b}\n" for a, b in rows).encode()
                headers = {"content-type": "text/csv"}
            else:
                body = json.dumps({"instances": rows}).encode()
                headers = {"content-type": "application/json"}
            answer = client.post(url, content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["predictions"]) == len(rows)
            bodies.append(body)
    return bodies


def captured(modelci: Run, root: Path, env: str, sent: list[bytes]) -> dict[str, Any]:
    """`modelci capture --records --json` once every body sent is among the records."""

    def holds_all() -> dict[str, Any] | None:
        document: dict[str, Any] = ok(
            modelci("-C", root, "capture", "toy", "--env", env, "--records", "--json")
        ).json()
        inputs = {r["captureData"]["endpointInput"]["data"] for r in document["records"]}
        return document if {b.decode() for b in sent} <= inputs else None

    return wait_until(holds_all, f"the {env} endpoint's capture holds every request sent")


def check_sagemaker_format(document: dict[str, Any], endpoint: str, version: str) -> None:
    assert document["endpoint"] == endpoint and document["files"]
    for item in document["files"]:
        match = FILE.fullmatch(item["name"])
        assert match is not None, item
        assert (match["endpoint"], match["version"]) == (endpoint, version)
    for record in document["records"]:
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
        request = record["captureData"]["endpointInput"]
        response = record["captureData"]["endpointOutput"]
        assert set(request) == set(response) == {"observedContentType", "mode", "data", "encoding"}
        assert (request["mode"], response["mode"]) == ("INPUT", "OUTPUT")
        expected = {"application/json": "JSON", "text/csv": "CSV"}[request["observedContentType"]]
        assert request["encoding"] == expected
        assert response["encoding"] == "JSON"
        assert json.loads(response["data"])["predictions"]
        assert re.fullmatch(r"[0-9a-f-]{36}", record["eventMetadata"]["eventId"])
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["eventMetadata"]["inferenceTime"]
        )


def test_capture_files_hold_the_requests_and_drift_judges_them(
    git_repo: Callable[..., GitRepo], modelci: Run, hosts: Hosts, shared_envs: Path
) -> None:
    repo = git_repo()
    toy_repository(repo)
    linked_envs(repo.root, shared_envs)
    hosts.roots.append(repo.root)
    ok(modelci("-C", repo.root, "train", "toy"))
    ok(modelci("-C", repo.root, "test", "toy", "--skip", "reproducibility"))
    version = ok(modelci("-C", repo.root, "deploy", "toy", "--env", "staging", "--json")).json()[
        "version"
    ]
    url = host_url(repo.root)
    assert url is not None
    sampler = random.Random(7)
    same = [features(i) for i in sampler.sample(range(ROWS), 150)]
    sent = send(f"{url}/endpoints/toy-staging/invocations", same)

    document = captured(modelci, repo.root, "staging", sent)
    check_sagemaker_format(document, "toy-staging", version)
    files = [repo.root / ".modelci" / "artifacts" / f["name"] for f in document["files"]]
    assert all(f.is_file() for f in files)  # in the store, SageMaker's layout under capture/
    got = repo.root / "got"
    fetched = ok(modelci("-C", repo.root, "capture", "toy", "--env", "staging", "--output", got))
    assert "capture file(s)" in fetched.stderr
    assert (got / document["files"][0]["name"]).read_bytes() == files[0].read_bytes()

    # rows drawn from the training data: no drift
    passed = ok(modelci("-C", repo.root, "drift", "toy", "--env", "staging", "--json")).json()
    assert passed["version"] == version and passed["passed"] and not passed["drifted"]
    assert passed["rows"] >= len(same)
    assert [(c["column"], c["test"], c["drifted"]) for c in passed["columns"]] == [
        ("a", "chi_squared", False),
        ("b", "ks", False),
    ]
    # the drift gate lets the version out of staging
    ok(modelci("-C", repo.root, "promote", "toy", "--from", "staging", "--to", "production"))

    # shifted rows in production: drift, exit 1, and a table that says so
    shifted = [[a + 3, b + 5] for a, b in same]
    sent = send(f"{url}/endpoints/toy/invocations", shifted)
    captured(modelci, repo.root, "production", sent)
    failed = modelci("-C", repo.root, "drift", "toy", "--env", "production", "--json")
    assert failed.code == 1, failed.stdout + failed.stderr
    report = failed.json()
    assert report["drifted"] and report["share"] == 1.0
    assert [(c["column"], c["drifted"]) for c in report["columns"]] == [("a", True), ("b", True)]
    human = modelci("-C", repo.root, "drift", "toy", "--env", "production")
    assert human.code == 1 and "DRIFT" in human.stdout and "chi_squared" in human.stdout
    # ... and the drift gate refuses to promote from there (to a staging that serves nothing:
    # promoting to where the version already serves moves nothing, and judges nothing)
    ok(modelci("-C", repo.root, "undeploy", "toy", "--env", "staging"))
    refused = modelci(
        "-C", repo.root, "promote", "toy", "--from", "production", "--to", "staging", "--json"
    )
    assert refused.code == 1, refused.stdout + refused.stderr
    message = refused.json()["error"]["message"]
    assert f"the drift gate refuses {version} from production: drift = 1," in message

    # the host says what it captured
    endpoints = httpx.get(f"{url}/-/endpoints", timeout=10).json()
    assert endpoints["capture"]["dropped"] == 0
    assert endpoints["capture"]["written"] >= 2 * 50


def test_release_and_deploy_refuse_a_version_whose_captures_drifted(
    git_repo: Callable[..., GitRepo], modelci: Run, hosts: Hosts, shared_envs: Path
) -> None:
    """The drift gate judges a move into production on what the version served before, in
    staging: `deploy --env production` and `release` refuse it, naming the gate and the
    measured share, and record the refusal; `release --force` releases it, recorded."""
    repo = git_repo()
    toy_repository(repo)
    linked_envs(repo.root, shared_envs)
    hosts.roots.append(repo.root)
    ok(modelci("-C", repo.root, "train", "toy"))
    ok(modelci("-C", repo.root, "test", "toy", "--skip", "reproducibility"))
    staged = ok(modelci("-C", repo.root, "deploy", "toy", "--env", "staging", "--json")).json()
    version = staged["version"]
    url = host_url(repo.root)
    assert url is not None
    # staging's requests come from elsewhere than the training data: `a` and `b` shifted
    shifted = [[a + 3, b + 5] for a, b in (features(i) for i in range(0, ROWS, 3))]
    captured(
        modelci, repo.root, "staging", send(f"{url}/endpoints/toy-staging/invocations", shifted)
    )
    expected = f"the drift gate refuses {version} from staging: drift = 1, expected < 0.5"

    deployed = modelci("-C", repo.root, "deploy", "toy", "--env", "production", "--json")
    assert deployed.code == 1, deployed.stdout + deployed.stderr
    assert expected in deployed.json()["error"]["message"]

    repo.git("tag", "v1")
    refused = modelci("-C", repo.root, "release", "v1", "--json")
    assert refused.code == 1, refused.stdout + refused.stderr
    [entry] = refused.json()["models"]
    assert (entry["version"], entry["status"]) == (version, "failed"), entry
    assert expected in entry["reason"] and "100% of columns drifted (a, b)" in entry["reason"]
    assert "--force" in entry["reason"]
    human = modelci("-C", repo.root, "release", "v1")
    assert human.code == 1 and "the drift gate refuses" in human.stdout
    assert httpx.get(f"{url}/endpoints/toy/ping", timeout=10).status_code == 404  # not served

    forced = ok(modelci("-C", repo.root, "release", "v1", "--force", "--json")).json()
    [entry] = forced["models"]
    assert (entry["version"], entry["status"]) == (version, "deployed"), entry
    answer = httpx.post(
        f"{url}/endpoints/toy/invocations", json={"instances": [features(1)]}, timeout=30
    )
    assert answer.status_code == 200 and answer.json()["predictions"]

    events = ok(modelci("-C", repo.root, "history", "toy", "--json")).json()["events"]
    refusals = [e for e in events if e["kind"] == "deploy_refused"]
    assert len(refusals) == 3 and all(e["environment"] == "production" for e in refusals)
    assert all(any(expected in r for r in e["details"]["reasons"]) for e in refusals)
    [release] = [e for e in events if e["kind"] == "release"]
    assert release["tag"] == "v1" and release["details"]["forced"] is True
    assert any(expected in r for r in release["details"]["overridden"])


def test_a_host_with_no_checkout_captures_as_the_bundle_says(
    tmp_path: Path,
    git_repo: Callable[..., GitRepo],
    modelci: Run,
    shared_envs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = f"sqlite:///{tmp_path / 'shared' / 'registry.db'}"
    store = tmp_path / "shared" / "store"
    (tmp_path / "shared").mkdir()
    repo = git_repo()
    toy_repository(repo)
    linked_envs(repo.root, shared_envs)
    monkeypatch.setenv("MODELCI_REGISTRY_URL", registry)
    monkeypatch.setenv("MODELCI_STORE_URL", str(store))
    monkeypatch.setenv("MODELCI_DEPLOY_BACKEND", "host")
    folder = tmp_path / "host"
    linked_envs(folder, shared_envs)
    host = start_host(folder, "a", registry, str(store))
    try:
        ok(modelci("-C", repo.root, "train", "toy"))
        ok(modelci("-C", repo.root, "test", "toy", "--skip", "reproducibility"))
        deployed = ok(modelci("-C", repo.root, "deploy", "toy", "--env", "staging", "--json"))
        version = deployed.json()["version"]
        picked = [features(i) for i in random.Random(3).sample(range(ROWS), 30)]
        sent = send(f"{host.url}/endpoints/toy-staging/invocations", picked)
        document = captured(modelci, repo.root, "staging", sent)
        check_sagemaker_format(document, "toy-staging", version)
        assert all((store / f["name"]).is_file() for f in document["files"])
        report = ok(modelci("-C", repo.root, "drift", "toy", "--env", "staging", "--json"))
        assert report.json()["passed"]
    finally:
        host.stop()
