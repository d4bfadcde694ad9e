"""`modelci validate`: every bad spec gets exit 2 and one message naming file, key and what
was expected; nothing else is touched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from modelci.errors import ConfigError
from modelci.spec import load_project
from tests.support.cli import CliResult
from tests.support.repos import GitRepo, add_model

Run = Callable[..., CliResult]


@pytest.fixture
def repo(git_repo: Callable[..., GitRepo]) -> GitRepo:
    repo = git_repo()
    repo.write("modelci.toml", "")  # `validate` insists on one; the defaults hold
    add_model(repo, "models/churn")
    add_model(repo, "models/price")
    repo.commit("two models")
    return repo


def test_valid_repository(repo: GitRepo, modelci: Run) -> None:
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 0, result.stderr
    assert result.json() == {
        "ok": True,
        "models": [
            {"model": "churn", "path": "models/churn", "status": "valid", "error": None},
            {"model": "price", "path": "models/price", "status": "valid", "error": None},
        ],
        "warnings": [],
    }


def test_example_repository_is_valid(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo(examples=True)
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 0, result.stdout + result.stderr
    assert {m["model"] for m in result.json()["models"]} == {"churn", "price"}
    assert result.json()["warnings"] == []


def bad(repo: GitRepo, modelci: Run, text: str, file: str = "models/churn/model.toml") -> str:
    """Write `text` into `file`, validate, and return the one error message: a bad
    modelci.toml is exit 2; a bad model.toml fails that model's row only (exit 1), the other
    model's row stays valid, as `run` and `release` fail that model only."""
    repo.write(file, text)
    result = modelci("-C", repo.root, "validate", "--json")
    human = modelci("-C", repo.root, "validate")
    assert human.stderr.startswith("error: ") and file in human.stderr
    if file == "modelci.toml":
        assert result.code == 2, result.stdout
        error = result.json()["error"]
        assert human.code == 2
    else:
        assert result.code == 1, result.stdout
        document = result.json()
        assert document["ok"] is False
        rows = {row["path"]: row for row in document["models"]}
        folder = file.rpartition("/")[0]
        assert rows[folder]["status"] == "failed"
        assert [r["status"] for p, r in rows.items() if p != folder] == ["valid"]
        error = rows[folder]["error"]
        assert human.code == 1 and f"failed: {rows[folder]['model']} ({folder})" in human.stdout
    assert error["file"] == file
    return str(error["message"])


def test_toml_syntax_error_names_line_and_column(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[train]\nentrypoint = "train.py"\nseed = = 3\n')
    assert "invalid TOML" in message
    assert "line 3" in message and "column" in message


def test_unknown_key_suggests_the_close_one(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[train]\nentrypoint = "train.py"\nhyperparamters = {}\n')
    assert "train.hyperparamters" in message
    assert "did you mean 'hyperparameters'?" in message


def test_unknown_section_lists_known_ones(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[train]\nentrypoint = "train.py"\n[serving]\nworkers = 2\n')
    assert "serving: unknown key; did you mean 'serve'?" in message


def test_wrong_type_names_key_and_expectation(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[train]\nentrypoint = "train.py"\nseed = "forty-two"\n')
    assert "train.seed" in message and "integer" in message and "forty-two" in message


def test_non_scalar_hyperparameter(repo: GitRepo, modelci: Run) -> None:
    message = bad(
        repo, modelci, '[train]\nentrypoint = "train.py"\nhyperparameters = { C = [1, 2] }\n'
    )
    assert "train.hyperparameters.C" in message


def test_missing_entrypoint_key(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, "[train]\nseed = 1\n")
    assert "train.entrypoint: required key is missing" in message


def test_missing_entrypoint_file(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[train]\nentrypoint = "fit.py"\n')
    assert "train.entrypoint" in message and "'fit.py' does not exist" in message


def test_bad_model_name(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[model]\nname = "Churn_v2"\n[train]\nentrypoint = "train.py"\n')
    assert "model.name" in message and "'Churn_v2'" in message and "^[a-z]" in message


def test_bad_folder_name_asks_for_an_explicit_name(repo: GitRepo, modelci: Run) -> None:
    add_model(repo, "models/Price_Model")
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 1
    rows = {row["path"]: row for row in result.json()["models"]}
    assert [rows[p]["status"] for p in sorted(rows)] == ["failed", "valid", "valid"]
    assert "the folder's name" in rows["models/Price_Model"]["error"]["message"]


def test_two_models_with_one_name(repo: GitRepo, modelci: Run) -> None:
    message = bad(
        repo,
        modelci,
        '[model]\nname = "churn"\n[train]\nentrypoint = "train.py"\n',
        file="models/price/model.toml",
    )
    assert "'churn' is used twice" in message and "models/churn/model.toml" in message


@pytest.mark.parametrize("gate", ["~ 0.85", ">= high", "between 0.9 0.1"])
def test_malformed_gate(repo: GitRepo, modelci: Run, gate: str) -> None:
    text = f'[train]\nentrypoint = "train.py"\n[gates]\naccuracy = "{gate}"\n'
    message = bad(repo, modelci, text)
    assert message.startswith("models/churn/model.toml: gates.accuracy: malformed gate")
    assert gate in message


def test_bad_metric_regex(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[train]\nentrypoint = "train.py"\nmetrics = { acc = "acc=" }\n')
    assert "train.metrics" in message and "capturing group" in message


def test_bad_project_file(repo: GitRepo, modelci: Run) -> None:
    message = bad(repo, modelci, '[project]\nmodel = ["models/*"]\n', file="modelci.toml")
    assert "project.model: unknown key; did you mean 'models'?" in message


def test_depends_on_matching_nothing_is_a_warning(repo: GitRepo, modelci: Run) -> None:
    repo.write(
        "models/churn/model.toml",
        '[model]\ndepends_on = ["lib/nothing/**"]\n[train]\nentrypoint = "train.py"\n',
    )
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 0
    assert result.json()["warnings"] == [
        "models/churn/model.toml: model.depends_on: 'lib/nothing/**' matches no file"
    ]
    assert "warning:" in modelci("-C", repo.root, "validate").stderr


def test_every_bad_file_is_reported(repo: GitRepo, modelci: Run) -> None:
    repo.write("models/churn/model.toml", "[train\n")
    repo.write("models/price/model.toml", "[train]\nseed = 1\n")
    result = modelci("-C", repo.root, "validate")
    assert result.code == 1  # every model failed, and each is still a model's failure
    assert "models/churn/model.toml" in result.stderr
    assert "models/price/model.toml" in result.stderr
    rows = modelci("-C", repo.root, "validate", "--json").json()["models"]
    assert [(r["model"], r["status"]) for r in rows] == [("churn", "failed"), ("price", "failed")]
    assert "train.entrypoint" in rows[1]["error"]["message"]


def test_one_bad_model_fails_its_row_as_run_and_release_do(repo: GitRepo, modelci: Run) -> None:
    """A missing entry point and an invalid model.toml, each beside a good model: validate
    fails that model's row (exit 1, file and key named) and says the other is valid; a bad
    modelci.toml is still a project's error (exit 2)."""
    (repo.root / "models/price/train.py").unlink()
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 1, result.stdout
    churn, price = result.json()["models"]
    assert (churn["model"], churn["status"], churn["error"]) == ("churn", "valid", None)
    assert (price["model"], price["path"], price["status"]) == ("price", "models/price", "failed")
    assert price["error"]["key"] == "train.entrypoint"
    assert "'train.py' does not exist" in price["error"]["message"]
    human = modelci("-C", repo.root, "validate")
    assert human.code == 1
    assert "valid: 1 of 2 model(s): churn" in human.stdout
    assert "failed: price (models/price)" in human.stdout
    assert "error: models/price/model.toml: train.entrypoint" in human.stderr

    repo.write("models/price/train.py", "print('score=1')\n")
    repo.write("models/churn/model.toml", '[model]\nname = "churn"\n[train\n')
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 1, result.stdout
    churn, price = result.json()["models"]
    assert (churn["model"], churn["status"]) == ("churn", "failed")
    assert "invalid TOML" in churn["error"]["message"] and price["status"] == "valid"

    repo.write("modelci.toml", "[project\n")  # the project's own file: exit 2 for all
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 2 and result.json()["error"]["file"] == "modelci.toml"


def test_environment_overrides_project_file(repo: GitRepo) -> None:
    repo.write("modelci.toml", '[registry]\nurl = "sqlite:///a.db"\n')
    project = load_project(
        repo.root, {"MODELCI_REGISTRY_URL": "postgresql://db/x", "MODELCI_TRAIN_BACKEND": "ray"}
    )
    assert project.registry.url == "postgresql://db/x"
    assert project.train.backend == "ray"
    assert load_project(repo.root, {}).registry.url == "sqlite:///a.db"


def test_bad_override_names_the_key(
    repo: GitRepo, modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCI_TRAIN_BACKEND", "kubernetes")
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 2
    assert result.json()["error"]["key"] == "train.backend"
    assert "'local', 'container', 'ray' or 'sagemaker'" in result.json()["error"]["message"]


def test_defaults_of_the_design(repo: GitRepo) -> None:
    project = load_project(repo.root, {})
    assert project.project.main == "main"
    assert project.project.models == ["models/*"]
    assert list(project.environments) == ["staging", "production"]
    assert project.environments["staging"].suffix == "-staging"
    assert project.registry.url == "sqlite:///.modelci/registry.db"
    assert project.store.url == ".modelci/artifacts"


def test_validate_changes_nothing(repo: GitRepo, modelci: Run) -> None:
    before = sorted(p.relative_to(repo.root) for p in Path(repo.root).rglob("*"))
    modelci("-C", repo.root, "validate")
    after = sorted(p.relative_to(repo.root) for p in Path(repo.root).rglob("*"))
    assert before == after


@pytest.mark.parametrize("seed", ['"42"', "true"])
def test_no_coercion_across_types_from_any_path(repo: GitRepo, modelci: Run, seed: str) -> None:
    """A string is not a number and a bool is not an integer in a TOML file: `validate` and
    `changed` (which reads specs through the cache) give the same verdict, twice (a miss, then
    the cached verdict)."""
    message = bad(repo, modelci, f'[train]\nentrypoint = "train.py"\nseed = {seed}\n')
    assert "train.seed" in message and "integer" in message
    repo.commit("a seed of the wrong type")
    for _ in range(2):
        result = modelci("-C", repo.root, "changed", "--json")
        assert result.code == 0, result.stdout  # the model's error, not the report's
        [entry] = [c for c in result.json()["changed"] if c["model"] == "churn"]
        assert entry["error"].startswith("models/churn/model.toml: train.seed: ")
        assert "integer" in entry["error"]


def test_integer_overrides_from_the_environment_are_converted(repo: GitRepo) -> None:
    project = load_project(repo.root, {"MODELCI_SAGEMAKER_MAX_WAIT_S": "60"})
    assert project.sagemaker.max_wait_s == 60
    with pytest.raises(ConfigError) as raised:
        load_project(repo.root, {"MODELCI_SAGEMAKER_MAX_WAIT_S": "soon"})
    assert raised.value.key == "sagemaker.max_wait_s"
    assert "MODELCI_SAGEMAKER_MAX_WAIT_S" in raised.value.message


@pytest.mark.parametrize(
    ("section", "known"),
    [
        ("train", "'local', 'container', 'ray' or 'sagemaker'"),
        ("deploy", "'local', 'container', 'host', 'ray' or 'sagemaker'"),
    ],
)
def test_backend_names_come_from_the_backend_tables(
    repo: GitRepo, modelci: Run, section: str, known: str
) -> None:
    repo.write("modelci.toml", f'[{section}]\nbackend = "kubernetes"\n')
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert (error["file"], error["key"]) == ("modelci.toml", f"{section}.backend")
    assert "'kubernetes'" in error["message"] and known in error["message"]


def test_project_file_values_are_not_coerced_either(repo: GitRepo, modelci: Run) -> None:
    """modelci.toml is validated strictly too, and `changed` (which reads it through the spec
    cache) gives validate's verdict."""
    repo.write("modelci.toml", '[ray]\nserve_port = "8000"\n')
    repo.commit("a port as a string")
    for command in ("validate", "changed"):
        result = modelci("-C", repo.root, command, "--json")
        assert result.code == 2, (command, result.stdout)
        error = result.json()["error"]
        assert (error["file"], error["key"]) == ("modelci.toml", "ray.serve_port"), command


# --- checks across keys: what a training run would otherwise find out ------------------------

DECLARES_ACCURACY = (
    '[train]\nentrypoint = "train.py"\nmetrics = { accuracy = "accuracy=([0-9.]+)" }\n'
)


@pytest.mark.parametrize(
    ("gates", "key"),
    [
        ('f1 = ">= 0.8"', "gates.f1"),
        ('no_regression = { metric = "f1", max_drop = 0.01 }', "gates.no_regression.metric"),
    ],
)
def test_a_gate_on_an_undeclared_metric(repo: GitRepo, modelci: Run, gates: str, key: str) -> None:
    repo.write("models/churn/model.toml", f"{DECLARES_ACCURACY}[gates]\n{gates}\n")
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 1, result.stdout  # churn's failure; price is valid
    error = result.json()["models"][0]["error"]
    assert (error["file"], error["key"]) == ("models/churn/model.toml", key)
    assert "'f1' is not declared" in error["message"] and "train.metrics.f1" in error["message"]
    assert "accuracy" in error["message"]  # what is declared
    repo.write(
        "models/churn/model.toml",
        f"{DECLARES_ACCURACY}[gates]\n{gates}\n".replace("f1", "accuracy"),
    )
    assert modelci("-C", repo.root, "validate").code == 0


@pytest.mark.parametrize("section", ["train", "deploy"])
def test_sagemaker_without_a_role(repo: GitRepo, modelci: Run, section: str) -> None:
    repo.write("modelci.toml", f'[{section}]\nbackend = "sagemaker"\n')
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 2, result.stdout
    error = result.json()["error"]
    assert (error["file"], error["key"]) == ("modelci.toml", "sagemaker.role_arn")
    assert f"[{section}] backend" in error["message"]
    assert "MODELCI_SAGEMAKER_ROLE_ARN" in error["message"]
    repo.write(
        "modelci.toml",
        f'[{section}]\nbackend = "sagemaker"\n[sagemaker]\nrole_arn = "arn:aws:iam::1:role/ci"\n',
    )
    assert modelci("-C", repo.root, "validate").code == 0


@pytest.mark.parametrize(
    ("section", "url", "known"),
    [
        ("registry", "mysql://db/registry", "sqlite://"),
        ("store", "ftp://files.example/artifacts", "s3://"),
    ],
)
def test_a_url_no_backend_serves(
    repo: GitRepo, modelci: Run, section: str, url: str, known: str
) -> None:
    repo.write("modelci.toml", f'[{section}]\nurl = "{url}"\n')
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 2, result.stdout
    error = result.json()["error"]
    assert (error["file"], error["key"]) == ("modelci.toml", f"{section}.url")
    assert known in error["message"]


def test_the_scheme_check_imports_no_backend(repo: GitRepo) -> None:
    code = (
        "import sys; from pathlib import Path; from modelci.spec import load_project; "
        f"load_project(Path({str(repo.root)!r}), {{}}); "
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'boto3', "
        "'modelci.registry.sql', 'modelci.store.s3', 'modelci.store.oci'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_validate_needs_a_project_file(repo: GitRepo, modelci: Run) -> None:
    (repo.root / "modelci.toml").unlink()
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert error["file"] == "modelci.toml" and "`modelci init`" in error["message"]
    assert modelci("-C", repo.root, "changed", "--json").code == 0  # optional elsewhere
