"""A backend whose optional package is not installed is a ConfigError (exit 2) naming the extra
that brings it, raised when the backend is opened, before anything is recorded.

Every package is installed in the test environment: `fake_missing` runs the code in a new
interpreter where the packages cannot be imported. `sys.modules[name] = None` makes every import
of `name` fail with ModuleNotFoundError, as when it is absent, and makes `find_spec` say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest


def fake_missing(packages: list[str], code: str, cwd: Path, **env: str) -> dict[str, Any]:
    """Run `code` where `packages` are not importable; the ConfigError it raised, as JSON."""
    blocked = "".join(f"sys.modules[{name!r}] = None\n" for name in packages)
    program = (
        "import json, sys\n"
        + blocked
        + "from modelci.errors import ConfigError\n"
        + "try:\n"
        + textwrap.indent(textwrap.dedent(code), "    ")
        + "except ConfigError as error:\n"
        + "    print(json.dumps({**error.to_json(), 'exit_code': error.exit_code}))\n"
        + "else:\n"
        + "    print('{}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    error: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return error


def test_s3_store_without_boto3(tmp_path: Path) -> None:
    error = fake_missing(
        ["boto3", "botocore"],
        """
        from pathlib import Path
        from modelci.store import open_store
        open_store("s3://bucket/prefix", Path("."))
        """,
        tmp_path,
    )
    assert error["exit_code"] == 2 and error["key"] == "store.url"
    assert "the s3:// store needs the package 'boto3': install modelci[s3]" in error["message"]


def test_postgres_registry_without_psycopg(tmp_path: Path) -> None:
    error = fake_missing(
        ["psycopg", "psycopg2"],
        """
        from pathlib import Path
        from modelci.registry import open_registry
        open_registry("postgresql://ci@127.0.0.1:9/registry", Path(".")).models()
        """,
        tmp_path,
    )
    assert error["exit_code"] == 2 and error["key"] == "registry.url"
    assert "psycopg" in error["message"] and "modelci[postgres]" in error["message"]


def test_sagemaker_without_boto3(tmp_path: Path) -> None:
    error = fake_missing(
        ["boto3", "botocore"],
        """
        from modelci.aws import SageMakerAccount
        from modelci.spec import SageMakerSection
        SageMakerAccount.open(
            SageMakerSection(role_arn="arn:aws:iam::123456789012:role/ci", bucket="s3://modelci-bucket/ci")
        )
        """,
        tmp_path,
    )
    assert error["exit_code"] == 2
    assert "needs the package 'boto3': install modelci[sagemaker]" in error["message"]


def test_ray_backends_without_ray(tmp_path: Path) -> None:
    error = fake_missing(
        ["ray"],
        """
        from modelci.raycluster import RayCluster
        from modelci.spec import RaySection
        RayCluster.from_settings(RaySection(address="127.0.0.1:6379"))
        """,
        tmp_path,
    )
    assert error["exit_code"] == 2
    assert "the Ray backend needs the package 'ray': install modelci[ray]" in error["message"]


def test_parquet_sampling_without_pyarrow(tmp_path: Path) -> None:
    (tmp_path / "train.parquet").write_bytes(b"PAR1")
    error = fake_missing(
        ["pyarrow"],
        """
        from pathlib import Path
        from modelci.testing.sampling import sample_channel
        sample_channel(Path("train.parquet"), Path("out"), fraction=0.5, key=None, seed=1)
        """,
        tmp_path,
    )
    assert error["exit_code"] == 2
    assert (
        "sampling Parquet needs the package 'pyarrow': install modelci[parquet]"
        in (error["message"])
    )


@pytest.mark.parametrize("backend", ["ray", "sagemaker"])
def test_the_deploy_command_without_its_backends_package(
    backend: str, tmp_path: Path, git_repo: Any
) -> None:
    """Through the command: exit 2, one JSON error naming the extra, no traceback."""
    repo = git_repo(examples=True)
    package = {"ray": "ray", "sagemaker": "boto3"}[backend]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys\nsys.modules[{package!r}] = None\n"
            "from modelci.cli import main\n"
            "main(sys.argv[1:])\n",
            "-C",
            str(repo.root),
            "deploy",
            "churn",
            "--env",
            "staging",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "MODELCI_DEPLOY_BACKEND": backend,
            "MODELCI_RAY_ADDRESS": "127.0.0.1:9",
            "MODELCI_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/ci",
            "MODELCI_SAGEMAKER_BUCKET": "s3://modelci-bucket/ci",
        },
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert f"install modelci[{backend}]" in error["message"]
    assert "Traceback" not in done.stderr


def test_a_sampled_parquet_channel_without_pyarrow_stops_before_the_job(tmp_path: Path) -> None:
    """train's input check, which runs before any job or record, names the extra."""
    error = fake_missing(
        ["pyarrow"],
        """
        from modelci.spec import parse_model
        from modelci.train.jobs import check_inputs
        spec = parse_model(
            "models/m",
            {"train": {"entrypoint": "train.py", "channels": {"train": "data/train.parquet"},
                       "sample": {"fraction": 0.5}}},
            "models/m/model.toml",
        )
        check_inputs(spec, {"models/m/train.py", "data/train.parquet"})
        """,
        tmp_path,
    )
    assert error["exit_code"] == 2
    assert error["key"] == "train.channels.train"
    assert "needs the package 'pyarrow': install modelci[parquet]" in error["message"]
