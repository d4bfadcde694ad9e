"""Globs, overrides and gate expressions: the pure pieces under the specs."""

from __future__ import annotations

import pytest

from modelci.settings import apply_overrides, glob_regex, literal_prefix, model_folders
from modelci.testing.gates import parse_gate


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("lib/features/**", "lib/features/a.py", True),
        ("lib/features/**", "lib/features/deep/er/a.py", True),
        ("lib/features/**", "lib/featuresx/a.py", False),
        ("data/churn/*.csv", "data/churn/train.csv", True),
        ("data/churn/*.csv", "data/churn/sub/train.csv", False),
        ("data/churn/*.csv", "data/churn/train.parquet", False),
        ("**/*.sql", "queries/a/b.sql", True),
        ("**/*.sql", "b.sql", True),
        ("lib/common", "lib/common/x.py", True),
        ("data/?.csv", "data/a.csv", True),
        ("data/?.csv", "data/ab.csv", False),
        ("data/[ab].csv", "data/b.csv", True),
        ("data/[!ab].csv", "data/b.csv", False),
    ],
)
def test_glob_regex(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).fullmatch(path)) is matches


def test_literal_prefix_stops_at_first_wildcard() -> None:
    assert literal_prefix("lib/features/**") == "lib/features"
    assert literal_prefix("data/*/train.csv") == "data"
    assert literal_prefix("**/*.py") == ""


def test_model_folders_follow_project_globs() -> None:
    files = [
        "models/a/model.toml",
        "models/a/train.py",
        "other/b/model.toml",
        "models/x/y/model.toml",
    ]
    assert model_folders(files, ["models/*"]) == ["models/a"]
    assert model_folders(files, ["models/*", "other/*"]) == ["models/a", "other/b"]
    assert model_folders(files, ["models/**"]) == ["models/a", "models/x/y"]


def test_overrides_lay_environment_over_file() -> None:
    data = {"registry": {"url": "sqlite:///x.db"}, "project": {"main": "trunk"}}
    merged = apply_overrides(
        data,
        {
            "MODELCI_REGISTRY_URL": "postgresql://db/modelci",
            "MODELCI_PROJECT_MODELS": "models/*, extra/*",
            "MODELCI_UNRELATED": "ignored",
        },
    )
    assert merged["registry"]["url"] == "postgresql://db/modelci"
    assert merged["project"] == {"main": "trunk", "models": ["models/*", "extra/*"]}
    assert data["registry"]["url"] == "sqlite:///x.db"  # the input is not changed


@pytest.mark.parametrize(
    ("expression", "value", "holds"),
    [
        (">= 0.85", 0.85, True),
        (">= 0.85", 0.84, False),
        ("< 0.3", 0.29, True),
        (">=0.5", 0.6, True),
        ("between 0.1 0.2", 0.15, True),
        ("between 0.1 0.2", 0.25, False),
        ("!= 0", 0.0, False),
    ],
)
def test_gates_hold(expression: str, value: float, holds: bool) -> None:
    assert parse_gate(expression, metric="m").holds(value) is holds


@pytest.mark.parametrize("expression", ["~ 0.85", ">= high", "between 0.3 0.1", "0.85", ""])
def test_malformed_gates_say_what_is_expected(expression: str) -> None:
    with pytest.raises(ValueError, match=r"^accuracy: malformed gate"):
        parse_gate(expression, metric="accuracy")
