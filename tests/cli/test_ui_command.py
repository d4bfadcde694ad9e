"""`modelci ui`'s refusals, before anything listens: each is exit 2 naming the option or file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.cli import CliResult
from tests.support.repos import GitRepo

Run = Callable[..., CliResult]


def test_bad_options_are_exit_2_naming_what_is_wrong(
    git_repo: Callable[..., GitRepo], modelci: Run, tmp_path: Path
) -> None:
    repo = git_repo(examples=True)
    no_tokens = modelci("-C", repo.root, "ui", "--allow-actions", "--json")
    assert no_tokens.code == 2
    assert no_tokens.json()["error"]["key"] == "--tokens"
    short = tmp_path / "tokens"
    short.write_text("# who may act\nalice too-short\n")
    bad = modelci("-C", repo.root, "ui", "--allow-actions", "--tokens", short, "--json")
    assert bad.code == 2
    error = bad.json()["error"]
    assert error["file"] == str(short) and "line 2" in error["message"]
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n")
    nobody = modelci("-C", repo.root, "ui", "--allow-actions", "--tokens", empty, "--json")
    assert nobody.code == 2 and "no `ACTOR TOKEN` line" in nobody.json()["error"]["message"]
    stray = modelci("-C", repo.root, "ui", "--tokens", short, "--json")
    assert stray.code == 2 and stray.json()["error"]["key"] == "--tokens"
    exposed = modelci("-C", repo.root, "ui", "--host", "0.0.0.0", "--json")
    assert exposed.code == 2 and exposed.json()["error"]["key"] == "--host"


def test_actions_need_a_checkout(modelci: Run, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice 0123456789abcdef0123\n")
    result = modelci(
        "-C",
        tmp_path,
        "ui",
        "--registry",
        f"sqlite:///{tmp_path}/registry.db",
        "--allow-actions",
        "--tokens",
        tokens,
        "--json",
    )
    assert result.code == 2 and result.json()["error"]["key"] == "--allow-actions"
