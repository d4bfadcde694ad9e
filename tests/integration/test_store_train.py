"""End to end with a remote artifact store: `modelci train` of a small stdlib-only model with
`MODELCI_STORE_URL` set to an S3 bucket (the AWS API emulator) or an OCI registry
(docker-registry), then `golden record` and `test` read the artifact back from it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from modelci.registry import open_registry
from modelci.store.oci import OciStore
from modelci.workspace import Workspace
from tests.support.cli import CliResult
from tests.support.repos import GitRepo
from tests.support.servers import SECRET_ACCESS_KEY
from tests.support.toy import make_toy

Run = Callable[..., CliResult]


def train_and_read_back(repo: GitRepo, modelci: Run) -> list[CliResult]:
    """Train, record golden rows (which loads the model from the store), test."""
    trained = modelci("-C", repo.root, "train", "toy", "--json")
    assert trained.code == 0, trained.stdout + trained.stderr
    recorded = modelci("-C", repo.root, "golden", "record", "toy", "--rows", "2")
    assert recorded.code == 0, recorded.stdout + recorded.stderr
    tested = modelci("-C", repo.root, "test", "toy", "--skip", "reproducibility", "--json")
    assert tested.code == 0, tested.stdout + tested.stderr
    assert tested.json()["passed"] is True
    return [trained, recorded, tested]


def no_secret_anywhere(repo: GitRepo, results: list[CliResult]) -> None:
    for result in results:
        assert SECRET_ACCESS_KEY not in result.stdout + result.stderr
    for path in (repo.root / ".modelci").rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET_ACCESS_KEY.encode() not in path.read_bytes(), path


@pytest.mark.aws
def test_train_into_s3_and_read_back(
    git_repo: Callable[..., GitRepo], modelci: Run, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo()
    make_toy(repo)
    monkeypatch.setenv("MODELCI_STORE_URL", f"s3://{s3_bucket}/artifacts")
    results = train_and_read_back(repo, modelci)
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        record = registry.get_version(f"toy-{repo.sha()[:12]}")
        assert record is not None and record.status == "ready"
        assert record.artifact_uri == (
            f"s3://{s3_bucket}/artifacts/sha256/"
            f"{record.artifact_sha256[:2]}/{record.artifact_sha256}"
        )
        import boto3

        head = boto3.client("s3").head_object(
            Bucket=s3_bucket, Key=record.artifact_uri.split("/", 3)[3]
        )
        assert head["Metadata"]["sha256"] == record.artifact_sha256
        rows = repr([record, *registry.events("toy")])
    assert SECRET_ACCESS_KEY not in rows
    no_secret_anywhere(repo, results)


@pytest.mark.aws
def test_train_into_a_missing_bucket(
    git_repo: Callable[..., GitRepo], modelci: Run, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo()
    make_toy(repo)
    monkeypatch.setenv("MODELCI_STORE_URL", "s3://no-such-bucket-for-toy/artifacts")
    result = modelci("-C", repo.root, "train", "toy")
    assert result.code == 2
    assert "'no-such-bucket-for-toy' does not exist" in result.stderr
    assert "store.url" in result.stderr and SECRET_ACCESS_KEY not in result.stderr
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        record = registry.get_version(f"toy-{repo.sha()[:12]}")
        assert record is None or record.status != "ready"
        assert "train" not in [event.kind for event in registry.events("toy")]


@pytest.mark.oci
def test_train_into_oci_read_back_and_follow_production(
    git_repo: Callable[..., GitRepo],
    modelci: Run,
    oci_registry: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelci.deploy.rollout import follow_production

    repo = git_repo()
    make_toy(repo)
    url = f"oci://{oci_registry}/e2e/artifacts"
    monkeypatch.setenv("MODELCI_STORE_URL", url)
    train_and_read_back(repo, modelci)
    version = f"toy-{repo.sha()[:12]}"
    store = OciStore(url)
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        record = registry.get_version(version)
        assert record is not None and record.status == "ready"
        assert record.artifact_uri == f"{url}@sha256:{record.artifact_sha256}"
        manifest = store.manifest(version)
        assert manifest is not None
        body = manifest.json()
        assert body["layers"][0]["digest"] == f"sha256:{record.artifact_sha256}"
        assert body["annotations"]["ai.modelci.version"] == version
        assert body["annotations"]["ai.modelci.commit"] == record.commit
        assert body["annotations"]["ai.modelci.fingerprint"] == record.fingerprint

        # what a release does once production serves the version: the tag moves first,
        # then the alias
        follow_production(Workspace(repo.root), registry, "toy", record)
        latest = store.manifest("toy-latest")
        assert latest is not None and latest.digest == manifest.digest
        assert registry.get_pointer("toy", "@latest").version == version  # type: ignore[union-attr]


@pytest.mark.oci
def test_train_into_a_registry_that_does_not_answer(
    git_repo: Callable[..., GitRepo],
    modelci: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.ports import free_port

    repo = git_repo()
    make_toy(repo)
    port = free_port()
    monkeypatch.setenv("MODELCI_STORE_URL", f"oci://127.0.0.1:{port}/models")
    result = modelci("-C", repo.root, "train", "toy")
    assert result.code == 1
    assert f"http://127.0.0.1:{port}" in result.stderr and "does not answer" in result.stderr
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        record = registry.get_version(f"toy-{repo.sha()[:12]}")
        assert record is None or record.status != "ready"
