"""The generated CI configurations work as written: a throw-away runner (tests/support/
ci_runner.py) executes their `run:` steps in order on fresh clones, each with a new virtualenv
and nothing restored, installing the project's wheel as a package index would offer it, with
the secrets pointing at a real PostgreSQL registry and a real S3 API (the emulator, the one
stand-in: AWS itself cannot run here) and the deploy backend `host`. A merge to main, then a
tag: a `modelci serve` host started apart, in a folder that is no checkout, serves staging and
then production the version built from the merged commit; neither runner starts a host.

pip's download cache is shared with the machine (the same bytes a runner would download); uv's
cache (which the jobs prune) and everything of modelci's own are not: each job starts from a
clone and a new virtualenv.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from modelci import __version__
from modelci.ciconfig import render
from modelci.registry import open_registry
from tests.support.ci_runner import JobRun, circleci_job, github_job, new_runner, run_job
from tests.support.package import build
from tests.support.postgres import create_database
from tests.support.repos import GitRepo
from tests.support.team import start_host
from tests.support.toy import make_toy

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.aws]

CLEARED = ("MODELCI_", "GITHUB_", "CIRCLE_", "AWS_", "VIRTUAL_ENV", "PYTHONPATH", "GIT_")


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    build(folder)
    return folder


def _runner_environ(wheel_dir: Path, moto_server: str, tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    find_links = " ".join(filter(None, (str(wheel_dir), os.environ.get("PIP_FIND_LINKS"))))
    environ.update(
        {
            "CI": "true",
            "NO_COLOR": "1",
            "PIP_FIND_LINKS": find_links,
            # the job prunes uv's cache before saving it: never the machine's own
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
            "GIT_AUTHOR_NAME": "CI",
            "GIT_AUTHOR_EMAIL": "ci@example.com",
            "GIT_COMMITTER_NAME": "CI",
            "GIT_COMMITTER_EMAIL": "ci@example.com",
            # what the OIDC credential step leaves behind, here for the emulator
            "AWS_ACCESS_KEY_ID": "AKIAMODELCITEST",
            "AWS_SECRET_ACCESS_KEY": "modelci-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto_server,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        }
    )
    return environ


def _invoke(url: str, endpoint: str) -> dict[str, object]:
    answer = httpx.post(
        f"{url}/endpoints/{endpoint}/invocations",
        content=b"[[1, 2]]",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    document: dict[str, object] = answer.json()
    return document


@pytest.mark.parametrize("provider", ["github", "circleci"])
def test_a_merge_then_a_tag_run_as_written_on_fresh_runners(
    provider: str,
    git_repo: Callable[..., GitRepo],
    wheel_dir: Path,
    postgres_url: str,
    s3_bucket: str,
    moto_server: str,
    tmp_path: Path,
) -> None:
    origin = git_repo()
    make_toy(origin)
    merged = origin.sha()
    registry_url = create_database(postgres_url, f"ci_{provider}")
    secrets = {
        "MODELCI_REGISTRY_URL": registry_url,
        "MODELCI_STORE_URL": f"s3://{s3_bucket}/artifacts",
        "MODELCI_DEPLOY_BACKEND": "host",
    }
    # the long-lived host, apart from both runners: it shares only the registry and store
    host = start_host(
        tmp_path / "host", f"host-{provider}", registry_url, secrets["MODELCI_STORE_URL"]
    )
    # what the project's settings say they need: here the secrets' registry and store
    text = render(provider, extras=("postgres", "s3"), aws=True)
    assert f'pip install "modelci[postgres,s3]=={__version__}"' in text
    base = _runner_environ(wheel_dir, moto_server, tmp_path)
    stops: list[tuple[Path, dict[str, str]]] = []

    def job(name: str, ref: str, runner: Path) -> JobRun:
        environ = new_runner(runner, origin.root, ref, base)
        if provider == "github":
            expressions = {f"secrets.{k}": v for k, v in secrets.items()}
            expressions["github.ref_name"] = ref
            workflow_env, steps = github_job(text, name, expressions)
            environ |= workflow_env | {"GITHUB_ACTOR": "ci-bot"}
        else:
            steps = circleci_job(text, name)
            environ |= secrets | {"CIRCLE_USERNAME": "ci-bot"}
            if ref != "main":
                environ["CIRCLE_TAG"] = ref
        stops.append((runner / "work", environ))
        return run_job(steps, runner / "work", environ)

    try:
        merge = job("merge", "main", tmp_path / "runner-merge")
        assert merge.ok, merge.log()
        names = [name for name, _, _, _ in merge.results]
        assert names[0] == "Install uv and modelci" and "Merge pipeline" in names
        assert "Prune uv's cache before it is saved" in names  # the steps after the pipeline ran
        version = f"toy-{merged[:12]}"
        with open_registry(registry_url, tmp_path) as registry:
            staging = registry.get_pointer("toy", "staging")
            assert staging is not None and staging.version == version
            record = registry.get_version(version)
            assert record is not None and record.actor == "ci-bot"
            assert record.artifact_uri and record.artifact_uri.startswith(f"s3://{s3_bucket}/")
        assert _invoke(host.url, "toy-staging")["predictions"] == [3.5]

        origin.git("tag", "v1")
        release = job("release", "v1", tmp_path / "runner-release")
        assert release.ok, release.log()
        with open_registry(registry_url, tmp_path) as registry:
            production = registry.get_pointer("toy", "production")
            assert production is not None and production.version == version
            assert [e.tag for e in registry.events("toy", kind="release")] == ["v1"]
        assert _invoke(host.url, "toy")["predictions"] == [3.5]
        # neither runner started an endpoint host of its own
        for work, _ in stops:
            assert not (work / ".modelci" / "serve" / "serve.json").exists()
        print(merge.log(), release.log(), sep="\n")  # with -s: each step's time
    finally:
        host.stop()
        for work, environ in stops:
            modelci = Path(environ["VIRTUAL_ENV"]) / "bin" / "modelci"
            if modelci.exists():
                subprocess.run(
                    [str(modelci), "serve", "--stop"], cwd=work, env=environ, check=False
                )
