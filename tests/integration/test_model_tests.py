"""`modelci test` and `modelci golden record` on a small real model: its own environment, the
real serving handler in process, real training runs for reproducibility."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from modelci.registry import open_registry
from modelci.registry.base import Event
from tests.support.cli import CliResult
from tests.support.repos import GitRepo
from tests.support.toy import TESTED_SPEC, make_toy, train_script, write_toy

Run = Callable[..., CliResult]


@pytest.fixture
def toy(git_repo: Callable[..., GitRepo], modelci: Run) -> GitRepo:
    repo = git_repo()
    make_toy(repo)
    assert modelci("-C", repo.root, "train", "toy").code == 0
    return repo


def commit_and_train(repo: GitRepo, modelci: Run) -> None:
    """Commit the work tree and train its version (a golden file changed: tested anew)."""
    repo.commit("golden file")
    trained = modelci("-C", repo.root, "train", "toy", "--json")
    assert trained.code == 0, trained.stdout + trained.stderr


def test_all_checks_pass_and_are_recorded(toy: GitRepo, modelci: Run, tmp_path: Path) -> None:
    recorded = modelci("-C", toy.root, "golden", "record", "toy", "--rows", "3", "--json")
    assert recorded.code == 0, recorded.stdout + recorded.stderr
    golden = (toy.root / "models/toy/tests/golden.jsonl").read_text().splitlines()
    assert len(golden) == 3
    first = json.loads(golden[0])
    assert first["output"] == {"predictions": [sum(first["input"]) + 0.5]}

    # a version is tested as its commit has it: commit the golden file, then its version
    uncommitted = modelci("-C", toy.root, "test", "toy", "--skip", "reproducibility", "--json")
    assert [c["kind"] for c in uncommitted.json()["checks"]] == ["golden", "gate"]
    commit_and_train(toy, modelci)
    junit = tmp_path / "junit.xml"
    result = modelci("-C", toy.root, "test", "toy", "--json", "--junit", junit)
    assert result.code == 0, result.stdout + result.stderr
    report = result.json()
    assert report["passed"] is True and report["model"] == "toy"
    kinds = [c["kind"] for c in report["checks"]]
    assert kinds == [
        "reproducibility",
        "golden",
        "golden",
        "golden",
        "gate",
    ]
    assert all(
        set(c) == {"name", "kind", "passed", "expected", "actual", "message", "skipped"}
        for c in report["checks"]
    )
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "5" and suite.get("failures") == "0"

    with open_registry("sqlite:///.modelci/registry.db", toy.root) as registry:
        record = registry.get_version(report["version"])
        assert record is not None and record.details["tests"]["passed"] is True
        assert registry.events("toy")[0].kind == "test"


def test_gate_failure_and_missing_metric(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo()
    # f1 is declared (validate insists) but the training log never prints it
    spec = TESTED_SPEC.format(gates='score = ">= 0.9"\nf1 = "between 0.5 1"')
    spec = spec.replace(
        'score = "score=([0-9.]+)" }', 'score = "score=([0-9.]+)", f1 = "f1=([0-9.]+)" }'
    )
    write_toy(repo, spec, rows=60)
    repo.commit("toy model")
    assert modelci("-C", repo.root, "train", "toy").code == 0
    result = modelci("-C", repo.root, "test", "toy", "--skip", "reproducibility", "--json")
    assert result.code == 1
    checks = {c["name"]: c for c in result.json()["checks"]}
    assert checks["score"]["passed"] is False and checks["score"]["actual"] == 0.75
    assert checks["score"]["expected"] == ">= 0.9"
    assert checks["f1"]["passed"] is False
    assert "has no metric 'f1' (its metrics: score)" in checks["f1"]["message"]
    assert checks["golden"]["skipped"] is True
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        kinds = [e.kind for e in registry.events("toy")]
        assert kinds[:2] == ["test", "gate_failed"]
    human = modelci("-C", repo.root, "test", "toy", "--skip", "reproducibility")
    assert human.code == 1 and "FAIL" in human.stdout


def test_no_regression_against_production(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo()
    make_toy(repo, gates='no_regression = { metric = "score", max_drop = 0.01 }')
    assert modelci("-C", repo.root, "train", "toy").code == 0
    version = f"toy-{repo.sha()[:12]}"
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        registry.update_version(version, metrics={"score": 0.9})  # production's was better
        registry.set_pointer(
            "toy",
            "production",
            version,
            expected_generation=None,
            event=Event(kind="deploy", model="toy", environment="production", to_version=version),
        )
    repo.write("models/toy/train.py", train_script("# retrained"))
    repo.commit("retrain")
    assert modelci("-C", repo.root, "train", "toy").code == 0
    result = modelci(
        "-C", repo.root, "test", "toy", "--skip", "reproducibility", "--skip", "golden", "--json"
    )
    assert result.code == 1
    [check] = result.json()["checks"]
    assert check["kind"] == "no_regression" and check["passed"] is False
    assert check["expected"] == ">= 0.89" and check["actual"] == 0.75
    assert version in check["message"]


def test_reproducibility_failure_is_diagnosed(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo()
    make_toy(repo, extra="import random\nbias = random.random()")
    assert modelci("-C", repo.root, "train", "toy").code == 0
    result = modelci(
        "-C", repo.root, "test", "toy", "--skip", "golden", "--skip", "gates", "--json"
    )
    assert result.code == 1
    [check] = result.json()["checks"]
    assert check["kind"] == "reproducibility" and check["passed"] is False
    message = check["message"]
    assert "files that differ: model.json" in message
    assert "predictions differ" in message
    assert "an unseeded random generator" in message


def test_golden_mismatch_and_bad_golden_file(toy: GitRepo, modelci: Run) -> None:
    golden = toy.root / "models/toy/tests/golden.jsonl"
    golden.parent.mkdir(parents=True)
    golden.write_text(
        '{"input": [1, 2], "output": {"predictions": [3.5]}}\n'
        '{"input": [1, 2], "output": {"predictions": [4.0]}}\n'
    )
    commit_and_train(toy, modelci)
    result = modelci("-C", toy.root, "test", "toy", "--skip", "reproducibility", "--json")
    assert result.code == 1
    checks = [c for c in result.json()["checks"] if c["kind"] == "golden"]
    assert [c["passed"] for c in checks] == [True, False]
    assert "output.predictions[0]: expected 4.0, got 3.5" in checks[1]["message"]

    golden.write_text('{"input": [1, 2], "output": {"predictions": [3.5]}}\n{"input": [1,\n')
    commit_and_train(toy, modelci)
    bad = modelci("-C", toy.root, "test", "toy", "--skip", "reproducibility", "--json")
    assert bad.code == 2
    error = bad.json()["error"]
    assert error["file"] == "models/toy/tests/golden.jsonl" and "line 2" in error["message"]


def test_untrained_model_is_a_clear_error(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo()
    make_toy(repo)
    result = modelci("-C", repo.root, "test", "toy", "--json")
    assert result.code == 2
    assert "no trained version yet" in result.json()["error"]["message"]
