"""The reproducibility check compares what the two trainings wrote, not what modelci added to
one of their folders afterwards (the input signature, recorded into the version's folder only)."""

from __future__ import annotations

from pathlib import Path

from modelci.runtime.signature import SIGNATURE_FILE
from modelci.testing.repro import digests


def _model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(weights)
    return folder


def test_the_recorded_signature_is_not_a_difference_between_two_trainings(
    tmp_path: Path,
) -> None:
    version = _model(tmp_path / "version", b"same weights")
    (version / SIGNATURE_FILE).write_text('{"columns": []}')
    rerun = _model(tmp_path / "rerun", b"same weights")
    assert digests(version) == digests(rerun)
    assert list(digests(version)) == ["model.joblib"]


def test_what_the_training_wrote_still_differs(tmp_path: Path) -> None:
    version = _model(tmp_path / "version", b"weights a")
    rerun = _model(tmp_path / "rerun", b"weights b")
    (rerun / "extra.txt").write_text("only in one")
    first, second = digests(version), digests(rerun)
    assert first["model.joblib"] != second["model.joblib"]
    assert "extra.txt" in second and "extra.txt" not in first
    # a signature file in a subfolder is the training's own output, and counts
    (rerun / "sub").mkdir()
    (rerun / "sub" / SIGNATURE_FILE).write_text("{}")
    assert f"sub/{SIGNATURE_FILE}" in digests(rerun)
