"""Servers the integration tests need, started once per session: PostgreSQL for the registry,
a two-node Ray cluster for the Ray backends."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelci.envs.engine import Engine
from modelci.registry import Registry, open_registry
from tests.support.images import BuiltImage
from tests.support.postgres import (
    PostgresUnavailable,
    create_database,
    find_postgres_bin,
    temporary_postgres,
    unavailable,
)
from tests.support.ray_cluster import RayCluster, RayUnavailable, ray_cluster

_databases = itertools.count()


@pytest.fixture(scope="module")
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy's environments, built once per test module (tests/conftest.py's `toy`)."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the whole session; its URL names an empty database.

    Without the server binaries the tests that need it are skipped, except in CI (where `CI`
    is set): there they fail.
    """
    try:
        find_postgres_bin()
    except PostgresUnavailable as error:
        unavailable(str(error))
    with temporary_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty registry: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite:///.modelci/registry.db"  # relative: inside `repo_root`, i.e. tmp_path
    server_url: str = request.getfixturevalue("postgres_url")
    return create_database(server_url, f"registry_{next(_databases)}")


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    """The repository root a registry URL is relative to."""
    return tmp_path


@pytest.fixture
def registry(registry_url: str, repo_root: Path) -> Iterator[Registry]:
    """A fresh registry on each backend, closed after the test."""
    with open_registry(registry_url, repo_root) as opened:
        yield opened


# --- AWS API emulator and OCI registry ------------------------------------------------------
# Both start once per session on a free port of 127.0.0.1 (tests/support/servers.py). A test
# that uses them carries the marker `aws` or `oci`.

from tests.support.servers import SECRET_ACCESS_KEY  # noqa: E402


def _server_missing(reason: str) -> None:
    """Skip a test whose server is not installed, except in CI (`CI` set): there it fails."""
    import os

    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The AWS API emulator (`moto_server`) for the session; yields its URL."""
    from tests.support.servers import ServerUnavailable, running_moto

    try:
        with running_moto() as url:
            yield url
    except ServerUnavailable as error:
        _server_missing(str(error))


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[str]:
    """A real OCI registry (`docker-registry`) for the session; yields `127.0.0.1:<port>`."""
    from tests.support.servers import ServerUnavailable, running_oci_registry

    try:
        with running_oci_registry() as host:
            yield host
    except ServerUnavailable as error:
        _server_missing(str(error))


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Dummy AWS credentials and the emulator's endpoint, set as boto3's standard chain reads
    them; no other AWS setting from outside. Yields the endpoint URL."""
    import os

    for variable in list(os.environ):
        if variable.startswith("AWS_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMODELCITEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_server


@pytest.fixture
def s3_bucket(aws_env: str, request: pytest.FixtureRequest) -> str:
    """A new, empty bucket in the emulator, named after the test."""
    import re

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{next(_databases)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


# --- the example repository through the demo's flow, once per session -------------------------

from tests.support.example_pipeline import ExampleRepository, run_example_pipeline  # noqa: E402


@pytest.fixture(scope="session")
def example_repository(tmp_path_factory: pytest.TempPathFactory) -> ExampleRepository:
    """The example repository after run, release v1.0.0, a change to churn and a second run:
    what the dashboard and report tests read (and never change: copy it to act on it)."""
    return run_example_pipeline(tmp_path_factory.mktemp("example-pipeline"))


# --- container images ------------------------------------------------------------------------
# podman (scripts/ensure-podman), the base image made from Debian packages (kept in podman's
# storage, so made once across sessions) and the toy's image, built and pushed once a session.


@pytest.fixture(scope="session")
def podman() -> Engine:
    """podman, configured by scripts/ensure-podman."""
    from modelci.envs.engine import find_engine

    engine = find_engine("podman")
    if engine is None:
        _server_missing("podman does not answer: run scripts/ensure-podman")
    assert engine is not None
    return engine


@pytest.fixture(scope="session")
def base_image(podman: Engine) -> str:
    """The base image's tag, built from Debian packages the first time (about 2 minutes)."""
    from modelci.envs.baseimage import ensure_base_image

    return ensure_base_image(podman).tag


@pytest.fixture(scope="session")
def toy_image(
    base_image: str, oci_registry: str, tmp_path_factory: pytest.TempPathFactory
) -> BuiltImage:
    """The toy model's image, built and pushed to the session's OCI registry."""
    from tests.support.images import build_toy_image

    return build_toy_image(
        tmp_path_factory.mktemp("images") / "toy", base_image, f"{oci_registry}/ml"
    )


@pytest.fixture(scope="session")
def cluster() -> Iterator[RayCluster]:
    """A head and a worker node with one CPU each, started once for the session's Ray tests."""
    try:
        with ray_cluster() as started:
            yield started
    except RayUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Ray cluster: {error}")


@pytest.fixture
def on_ray(cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    """modelci pointed at the cluster through MODELCI_RAY_* variables."""
    for name, value in cluster.environ().items():
        monkeypatch.setenv(name, value)
    return cluster
