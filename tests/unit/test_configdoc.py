"""docs/configuration.md is generated from modelci.spec: it matches the generator, and the
generator refuses a key without a description or a description of no key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from modelci import configdoc
from modelci.settings import MODEL_FILE, PROJECT_FILE

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_is_the_generated_one() -> None:
    assert REFERENCE.read_text() == configdoc.render(), (
        f"{REFERENCE.name} is out of date with src/modelci/spec.py or configdoc.py; "
        f"regenerate it: {configdoc.COMMAND}"
    )


def test_every_key_of_both_files_is_in_the_reference() -> None:
    text = configdoc.render()
    for name, model in ((PROJECT_FILE, configdoc.ProjectFile), (MODEL_FILE, configdoc.ModelFile)):
        for key in configdoc.keys(name, model):
            if "." in key.name:
                assert f"| `{key.name}` |" in text, key.name
            else:
                assert f"### `[{key.name}]`" in text, key.name
    assert "| `MODELCI_REGISTRY_URL` | `registry.url` | value |" in text
    assert "| `MODELCI_PROJECT_MODELS` | `project.models` | comma-separated list |" in text


def test_types_and_defaults_come_from_the_models() -> None:
    keys = {k.name: k for k in configdoc.keys(MODEL_FILE, configdoc.ModelFile)}
    assert keys["train.entrypoint"].default == "required"
    assert keys["train.timeout"].type == "integer > 0"
    assert keys["train.timeout"].default == "3600"
    assert keys["train.sample"].type == "table (optional)"
    assert keys["train.sample.fraction"].type == "number > 0, <= 1"
    project = {k.name: k for k in configdoc.keys(PROJECT_FILE, configdoc.ProjectFile)}
    # a key of a table whose default is a value takes that value's default
    assert project["registry.url"].default == '"sqlite:///.modelci/registry.db"'
    assert project["project.models"].type == "list of non-empty strings"


def test_a_key_without_description_is_refused() -> None:
    descriptions = copy.deepcopy(configdoc.DESCRIPTIONS)
    del descriptions[MODEL_FILE]["train.seed"]
    with pytest.raises(configdoc.DescriptionError, match=r"model.toml: train.seed: no description"):
        configdoc.render(descriptions)


def test_a_description_of_no_key_is_refused() -> None:
    descriptions = copy.deepcopy(configdoc.DESCRIPTIONS)
    descriptions[PROJECT_FILE]["project.gone"] = "A key that was removed."
    with pytest.raises(configdoc.DescriptionError, match=r"project.gone: described, but no such"):
        configdoc.render(descriptions)


def test_a_description_given_by_the_field_in_spec_counts() -> None:
    class Section(BaseModel):
        described: int = Field(default=1, description="Described where it is declared.")
        bare: str = "x"

    class File(BaseModel):
        section: Section = Section()

    found = {"f.toml": list(configdoc.keys("f.toml", File))}
    configdoc.check_descriptions(found, {"f.toml": {"section": "S.", "section.bare": "B."}})
    with pytest.raises(configdoc.DescriptionError) as refused:
        configdoc.check_descriptions(found, {"f.toml": {"section": "S."}})
    assert "f.toml: section.bare: no description" in str(refused.value)
    assert "section.described" not in str(refused.value)
    assert configdoc.COMMAND in str(refused.value)


def test_main_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert configdoc.main() == 0
    assert capsys.readouterr().out == REFERENCE.read_text()
