"""What enters the fingerprint: what decides the trained model, not what decides whether it
may ship."""

from __future__ import annotations

import tomllib

from modelci.fingerprint import FingerprintInputs, fingerprint
from modelci.spec import parse_model, validate_model_text

SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = {{ lr = {lr} }}
metrics = {{ accuracy = "accuracy=([0-9.]+)" }}

[gates]
{gates}

[tests]
{tests}
"""
TREE = {"models/a/train.py": "1" * 40, "models/a/model.toml": "2" * 40, "lib/x.py": "3" * 40}


def print_of(tree: dict[str, str], *, lr: float = 0.1, gates: str = "", tests: str = "") -> str:
    text = SPEC.format(lr=lr, gates=gates, tests=tests)
    spec = parse_model("models/a", tomllib.loads(text), "models/a/model.toml")
    return fingerprint(tree, spec, shared=[], lock_hash="lock")


def test_gates_tests_and_the_golden_file_stay_out() -> None:
    base = print_of(TREE)
    # the raw model.toml's blob does not enter: its validated spec does
    assert print_of({**TREE, "models/a/model.toml": "9" * 40}) == base
    assert print_of(TREE, gates='accuracy = ">= 0.9"') == base
    assert print_of(TREE, tests="tolerance = 0.5") == base
    assert print_of({**TREE, "models/a/tests/golden.jsonl": "4" * 40}) == base
    assert print_of({**TREE, "models/a/g.jsonl": "4" * 40}, tests='golden = "g.jsonl"') == base
    # what training reads still counts
    assert print_of(TREE, lr=0.2) != base
    assert print_of({**TREE, "models/a/train.py": "5" * 40}) != base
    assert print_of({**TREE, "models/a/tests/other.txt": "4" * 40}) != base


def test_the_spec_caches_dump_gives_the_same_inputs() -> None:
    text = SPEC.format(lr=0.1, gates='accuracy = ">= 0.9"', tests="")
    spec = parse_model("models/a", tomllib.loads(text), "models/a/model.toml")
    dump = validate_model_text(text.encode(), "models/a/model.toml")
    assert FingerprintInputs.of_dump("models/a", dump) == FingerprintInputs.of(spec)


def test_serve_keys_added_later_leave_the_fingerprint_as_it_was_while_unset() -> None:
    text = SPEC.format(lr=0.1, gates="", tests="")
    dump = validate_model_text(text.encode(), "models/a/model.toml")
    assert "capture" in dump["serve"] and "isolation" in dump["serve"]
    before = {**dump, "serve": dict(dump["serve"])}
    del before["serve"]["capture"], before["serve"]["isolation"]  # a dump made before them
    assert FingerprintInputs.of_dump("models/a", dump) == FingerprintInputs.of_dump(
        "models/a", before
    )
    # set, they are part of the version (its serving bundle carries them)
    for extra in ('[serve]\nisolation = "shared"\n', "[serve.capture]\npercent = 20\n"):
        changed = validate_model_text((text + extra).encode(), "models/a/model.toml")
        assert FingerprintInputs.of_dump("models/a", changed) != FingerprintInputs.of_dump(
            "models/a", dump
        )
