"""`modelci.seed_everything()`: one seed for random and NumPy (and torch where installed)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from modelci import seed_everything


def draws() -> tuple[float, float]:
    return random.random(), float(np.random.rand())


def test_same_seed_same_draws() -> None:
    seed_everything(123)
    first = draws()
    seed_everything(123)
    assert draws() == first
    seed_everything(124)
    assert draws() != first


def test_seed_comes_from_modelci_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELCI_SEED", "77")
    assert seed_everything() == 77
    first = draws()
    seed_everything(77)
    assert draws() == first


def test_default_seed_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELCI_SEED", raising=False)
    assert seed_everything() == 0
