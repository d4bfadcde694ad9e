"""The `[sagemaker]` settings and the pure pieces of the SageMaker backends: names, images,
the packed source folder."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from modelci.aws import SageMakerAccount, resource_name, split_s3
from modelci.errors import ConfigError
from modelci.spec import SageMakerSection, load_project
from modelci.train.sagemaker import job_name, pack_source


def test_defaults_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "modelci.toml").write_text(
        '[sagemaker]\nrole_arn = "arn:aws:iam::1:role/file"\ncanary = { percent = 20 }\n'
    )
    project = load_project(
        tmp_path,
        {
            "MODELCI_SAGEMAKER_ROLE_ARN": "arn:aws:iam::1:role/env",
            "MODELCI_SAGEMAKER_BUCKET": "s3://bucket/ci",
            "MODELCI_SAGEMAKER_ALARMS": "errors, latency",
            "MODELCI_SAGEMAKER_INSTANCE_COUNT": "2",
        },
    )
    settings = project.sagemaker
    assert settings.role_arn == "arn:aws:iam::1:role/env"  # the variable wins over the file
    assert settings.bucket == "s3://bucket/ci"
    assert settings.alarms == ["errors", "latency"]
    assert settings.instance_count == 2 and settings.instance_type == "ml.m5.large"
    assert (settings.canary.percent, settings.canary.wait_s) == (20, 300)
    assert settings.image_uri is None and settings.framework_version == "1.2-1"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('bucket = "my-bucket"', "sagemaker.bucket"),
        ("canary = { percent = 0 }", "sagemaker.canary.percent"),
        ('instance_typ = "ml.m5.large"', "sagemaker.instance_typ"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "modelci.toml").write_text(f"[sagemaker]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, {})
    assert caught.value.key == key and caught.value.file == "modelci.toml"


def test_missing_role_names_the_key_and_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        SageMakerAccount.open(SageMakerSection(bucket="s3://bucket"))
    assert caught.value.key == "sagemaker.role_arn"
    assert "MODELCI_SAGEMAKER_ROLE_ARN" in caught.value.message


def test_names_fit_sagemaker() -> None:
    assert resource_name("churn-0123456789ab") == "churn-0123456789ab"
    long = resource_name("m" * 55 + "-0123456789ab-dirty")
    assert len(long) == 63 and long.endswith("-0123456789ab-dirty")
    name = job_name("churn_x-0123456789ab-20240101T120000")
    assert len(name) <= 63 and name.startswith("churn-x-0123456789ab-20240101T120000-")
    assert len(job_name("m" * 55 + "-0123456789ab-sample-20240101T120000-2")) == 63
    assert split_s3("s3://bucket/a/b/") == ("bucket", "a/b")


def test_image_uri() -> None:
    account = SageMakerAccount(SageMakerSection(role_arn="r"), "eu-west-1", None, {})
    assert account.image_uri(None, None) == (
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    own = SageMakerAccount(
        SageMakerSection(role_arn="r", image_uri="1.dkr.ecr.x/{model}:{sha12}"),
        "eu-west-1",
        None,
        {},
    )
    assert own.image_uri("churn", "0123456789abcdef") == "1.dkr.ecr.x/churn:0123456789ab"
    # images pushed by `build --image --push` ([image].registry) serve when image_uri is unset
    pushed = SageMakerAccount(SageMakerSection(role_arn="r"), "eu-west-1", None, {}, "1.dkr/ml/")
    assert pushed.image_uri("churn", "0123456789abcdef") == "1.dkr/ml/churn:0123456789ab"


def test_source_files_sit_at_the_archive_root(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "lib" / "__pycache__").mkdir(parents=True)
    (folder / "train.py").write_text("print(1)\n")
    (folder / "lib" / "helpers.py").write_text("X = 1\n")
    (folder / "lib" / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\0")
    first = pack_source(folder, tmp_path / "a.tar.gz")
    with tarfile.open(first) as archive:
        assert archive.getnames() == ["lib/helpers.py", "train.py"]
    assert pack_source(folder, tmp_path / "b.tar.gz").read_bytes() == first.read_bytes()
