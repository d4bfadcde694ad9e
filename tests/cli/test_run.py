"""`modelci run` when a step fails unexpectedly: the model fails with a one-line reason, the
others go on, and `--traceback` prints the original exception where it was raised."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliResult
from tests.support.repos import GitRepo

Run = Callable[..., CliResult]


def fake_ensure_environment(root: Path, spec: Any, progress: Any = None) -> Any:
    """A stand-in for the environment build that fails as a bug would: nothing real can fail
    this way on purpose."""
    raise RuntimeError(f"boom in {spec.name}")


@pytest.fixture
def failing(git_repo: Callable[..., GitRepo], monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    repo = git_repo(examples=True)
    monkeypatch.setattr("modelci.envs.uv.ensure_environment", fake_ensure_environment)
    return repo


def test_an_unexpected_error_fails_the_model_with_one_line(failing: GitRepo, modelci: Run) -> None:
    result = modelci("-C", failing.root, "run", "--base", failing.sha("HEAD"), "--json")
    assert result.code == 0  # nothing changed from HEAD to HEAD
    result = modelci("-C", failing.root, "run", "--json")
    assert result.code == 1, result.stdout + result.stderr
    models = result.json()["models"]
    assert models and all(m["status"] == "failed" for m in models)
    assert all(
        m["error"] == f"build failed unexpectedly: RuntimeError: boom in {m['model']}"
        for m in models
    )
    assert "Traceback" not in result.stderr


def test_traceback_shows_where_the_original_error_was_raised(
    failing: GitRepo, modelci: Run
) -> None:
    result = modelci("-C", failing.root, "--traceback", "run", "--json")
    assert result.code == 1, result.stdout + result.stderr
    assert result.json()["models"]  # stdout still holds exactly the JSON document
    assert "Traceback (most recent call last)" in result.stderr
    assert "in fake_ensure_environment" in result.stderr
    assert "RuntimeError: boom in" in result.stderr
