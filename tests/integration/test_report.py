"""`modelci report`: what a pull request changes, on the registry the example pipeline made
(its second commit retrained churn with C = 0.5; production serves v1.0.0's churn)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from modelci.registry import open_registry
from tests.support.cli import CliResult
from tests.support.example_pipeline import REGISTRY, ExampleRepository
from tests.support.repos import GitRepo

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]


def test_markdown_report_of_a_changed_model_against_production(
    example_repository: ExampleRepository,
) -> None:
    repo = example_repository
    done = repo.modelci(
        "report",
        "--base",
        repo.first,
        "--dashboard-url",
        "http://dash.example:8800/",
    )
    text = done.stdout
    with open_registry(REGISTRY, repo.root) as registry:
        new = registry.get_version(f"churn-{repo.second[:12]}")
        pointer = registry.get_pointer("churn", "production")
        assert new is not None and pointer is not None
        old = registry.get_version(pointer.version)
        assert old is not None and old.version == f"churn-{repo.first[:12]}"
    assert text.startswith("<!-- modelci-report -->\n### modelci: 1 model(s) changed\n")
    assert f"`{repo.first[:12]}..{repo.second[:12]}`, compared with **production**" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| model | version | tests | gates | metric | production | new | change |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert [row[4] for row in rows] == ["accuracy", "roc_auc"]
    passed = new.details["tests"]["passed"]
    gates = [c for c in new.details["tests"]["checks"] if c["kind"] in ("gate", "no_regression")]
    assert gates
    assert rows[0][:4] == [
        "[churn](http://dash.example:8800/models/churn)",
        f"[{new.version}](http://dash.example:8800/versions/{new.version})",
        "✅ passed" if passed else "❌ failed",
        ", ".join(f"{g['name']} {'passed' if g['passed'] else 'failed'}" for g in gates),
    ]
    for row, metric in zip(rows, ("accuracy", "roc_auc"), strict=True):
        assert float(row[5]) == pytest.approx(old.metrics[metric], abs=5e-5)
        assert float(row[6]) == pytest.approx(new.metrics[metric], abs=5e-5)
        delta = new.metrics[metric] - old.metrics[metric]
        assert row[7] == f"{delta:+.4g}"
    assert re.search(r"\[compare with production\]\(http://dash\.example:8800/compare\?a=", text)
    assert "price" not in text  # untouched by the change


def test_json_and_html_reports(example_repository: ExampleRepository) -> None:
    repo = example_repository
    document = json.loads(repo.modelci("report", "--base", repo.first, "--format", "json").stdout)
    assert set(document) == {"base", "head", "production", "dashboard_url", "models", "deleted"}
    assert document["base"] == repo.first and document["head"] == repo.second
    assert document["dashboard_url"] is None
    (entry,) = document["models"]
    assert set(entry) == {
        "model",
        "reasons",
        "version",
        "status",
        "tests",
        "production_version",
        "metrics",
        "gates",
        "failed_checks",
        "links",
    }
    assert entry["model"] == "churn" and entry["status"] == "ready"
    assert entry["production_version"] == f"churn-{repo.first[:12]}"
    assert entry["links"] is None
    assert [m["metric"] for m in entry["metrics"]] == ["accuracy", "roc_auc"]
    page = repo.modelci("report", "--base", repo.first, "--format", "html").stdout
    assert page.startswith("<!doctype html>") and entry["version"] in page
    assert page.count("<tr>") == 1 + len(entry["metrics"])


def test_a_model_not_built_yet_is_reported_as_such(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    base = repo.sha()
    spec = repo.root / "models" / "price" / "model.toml"
    spec.write_text(spec.read_text() + "\n")
    repo.commit("touch price")
    result = modelci("-C", repo.root, "report", "--base", base)
    assert result.code == 0, result.stderr
    assert "| price | not built | not tested | - | - | - | - | - |" in result.stdout
    assert not (repo.root / ".modelci" / "registry.db").exists()  # nothing made to say so


def test_bad_base_and_format_are_exit_2(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo(examples=True)
    bad_base = modelci("-C", repo.root, "report", "--base", "no-such-rev")
    assert bad_base.code == 2 and "no-such-rev" in bad_base.stderr
    bad_format = modelci("-C", repo.root, "report", "--format", "pdf")
    assert bad_format.code == 2 and "--format" in bad_format.stderr
