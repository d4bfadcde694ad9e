"""The settings that pack endpoint versions into processes: the project's `[serve]` in
modelci.toml and a model's `[serve] isolation`, checked strictly, with the model's choice
winning and several workers always getting their own process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelci.errors import ConfigError
from modelci.serve.workers import packing
from modelci.spec import load_project, validate_model
from modelci.workspace import Workspace
from tests.support.repos import GitRepo

TRAIN = {"train": {"entrypoint": "train.py"}}


def test_project_serve_defaults_keep_a_process_per_version(tmp_path: Path) -> None:
    serve = load_project(tmp_path, {}).serve
    assert (serve.isolation, serve.idle_unload, serve.max_loaded) == ("process", 900, 0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[serve]\nisolation = "pooled"\n', "serve.isolation"),
        ("[serve]\nidle_unload = -1\n", "serve.idle_unload"),
        ('[serve]\nmax_loaded = "4"\n', "serve.max_loaded"),
        ("[serve]\nidle = 3\n", "serve.idle"),
    ],
)
def test_bad_project_serve_settings_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "modelci.toml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path, {})
    assert key in raised.value.render()


def test_a_host_with_no_checkout_sets_them_through_the_environment(tmp_path: Path) -> None:
    variables = {"MODELCI_SERVE_ISOLATION": "shared", "MODELCI_SERVE_IDLE_UNLOAD": "30"}
    serve = load_project(tmp_path, variables).serve
    assert (serve.isolation, serve.idle_unload) == ("shared", 30)
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path, {"MODELCI_SERVE_MAX_LOADED": "many"})
    assert "serve.max_loaded" in raised.value.render()


def test_a_model_may_ask_for_its_own_process() -> None:
    spec = validate_model({**TRAIN, "serve": {"isolation": "process"}}, "models/a/model.toml")
    assert spec.serve.isolation == "process"
    assert validate_model(TRAIN, "models/a/model.toml").serve.isolation is None
    with pytest.raises(ConfigError) as raised:
        validate_model({**TRAIN, "serve": {"isolation": "none"}}, "models/a/model.toml")
    assert "serve.isolation" in raised.value.render()


def test_packing_follows_the_model_then_the_project(git_repo: Callable[..., GitRepo]) -> None:
    repo = git_repo()
    repo.write("modelci.toml", '[serve]\nisolation = "shared"\nidle_unload = 30\nmax_loaded = 8\n')
    workspace = Workspace(repo.root)
    assert packing(workspace, None, 1) == {
        "isolation": "shared",
        "idle_unload_s": 30.0,
        "max_loaded": 8,
    }
    assert packing(workspace, "process", 1)["isolation"] == "process"
    assert packing(workspace, None, 2)["isolation"] == "process"  # workers need their own
