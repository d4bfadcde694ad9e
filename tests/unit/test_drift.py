"""Drift's statistics (against SciPy's where it is installed), the training data's statistics,
the per-column verdicts and the `[serve.capture]` and `[gates] drift` keys."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from modelci.errors import ConfigError
from modelci.monitor import stattests
from modelci.monitor.datastats import channel_statistics
from modelci.monitor.drift import compare
from modelci.spec import validate_model

scipy_stats = pytest.importorskip("scipy.stats")


def test_the_tests_agree_with_scipy() -> None:
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.3, size=200)
    assert stattests.ks_test(a, b) == pytest.approx(
        scipy_stats.ks_2samp(a, b, method="asymp").pvalue, rel=0.05
    )
    for statistic, dof in ((3.0, 2), (10.0, 4), (0.5, 1), (50.0, 30)):
        assert stattests.chi_squared_survival(statistic, dof) == pytest.approx(
            scipy_stats.chi2.sf(statistic, dof), rel=1e-9
        )
    reference, current = {"a": 30, "b": 50, "c": 20}, {"a": 10, "b": 30, "c": 40, "d": 3}
    keys = sorted(set(reference) | set(current))
    table = np.array([[reference.get(k, 0) for k in keys], [current.get(k, 0) for k in keys]])
    assert stattests.chi_squared_test(reference, current) == pytest.approx(
        scipy_stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9
    )
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert stattests.jensen_shannon(reference, current) == pytest.approx(
        jensenshannon(p, q, base=2), rel=1e-9
    )
    big, moved = rng.normal(size=5000), rng.normal(0.5, 1, size=400)
    quantiles = np.quantile(big, np.linspace(0, 1, 201))
    assert stattests.wasserstein_normed(quantiles, moved, float(big.std())) == pytest.approx(
        scipy_stats.wasserstein_distance(big, moved) / big.std(), rel=0.02
    )


def training(tmp_path: Path, rows: int) -> Path:
    folder = tmp_path / "train"
    folder.mkdir(parents=True)
    lines = "".join(f"{i},{i % 3},{(i * 37) % 101 / 10},{i % 2}\n" for i in range(rows))
    (folder / "train.csv").write_text("id,a,b,label\n" + lines)
    return folder


def test_statistics_of_a_channel(tmp_path: Path) -> None:
    stats = channel_statistics(training(tmp_path, 300))
    assert stats is not None and stats["rows"] == 300
    assert stats["order"] == ["id", "a", "b", "label"]
    a, b = stats["columns"]["a"], stats["columns"]["b"]
    assert (a["kind"], a["type"], a["categories"]) == (
        "categorical",
        "number",
        {"0.0": 100, "1.0": 100, "2.0": 100},
    )
    assert (b["kind"], b["min"], b["max"], b["completeness"]) == ("numerical", 0.0, 10.0, 1.0)
    assert len(b["values"]) == 300 and len(b["quantiles"]) == 201
    large = channel_statistics(training(tmp_path / "large", 3000))
    assert large is not None and "values" not in large["columns"]["b"]


@pytest.mark.parametrize("rows", [300, 3000])  # KS / chi-squared, then Wasserstein / JS
def test_rows_from_the_training_data_pass_and_shifted_rows_drift(tmp_path: Path, rows: int) -> None:
    stats = channel_statistics(training(tmp_path, rows))
    assert stats is not None
    picked = random.Random(1).choices(range(rows), k=600)  # W's noise at 150 rows is near 0.1
    same = [[i % 3, (i * 37) % 101 / 10] for i in picked]
    verdicts = compare(stats, ["a", "b"], same)
    tests = ("chi_squared", "ks") if rows < 1000 else ("jensen_shannon", "wasserstein")
    assert [(v.column, v.test, v.drifted) for v in verdicts] == [
        ("a", tests[0], False),
        ("b", tests[1], False),
    ]
    shifted = [[a + 3, b + 5] for a, b in same]
    assert [v.drifted for v in compare(stats, ["a", "b"], shifted)] == [True, True]


def test_missing_extra_and_mistyped_columns_are_violations(tmp_path: Path) -> None:
    stats = channel_statistics(training(tmp_path, 300))
    assert stats is not None
    verdicts = compare(stats, ["a", "b", "nope"], [[1, "x", 3, 4]])
    assert [(v.column, v.test, v.drifted) for v in verdicts] == [
        ("a", "chi_squared", False),
        ("b", "type", True),
        ("nope", "missing", True),
        ("#3", "extra", True),
    ]
    narrow = compare(stats, ["a", "b"], [[1]])
    assert [(v.column, v.test) for v in narrow] == [("a", "chi_squared"), ("b", "missing")]


def test_capture_and_drift_gate_keys() -> None:
    parsed = validate_model(
        {
            "train": {"entrypoint": "train.py"},
            "serve": {"capture": {"percent": 20, "columns": ["a", "b"]}},
            "gates": {"drift": "< 0.5"},
        },
        "models/m/model.toml",
    )
    assert parsed.serve.capture.percent == 20 and parsed.serve.capture.columns == ["a", "b"]
    with pytest.raises(ConfigError, match=r"serve\.capture\.percent"):
        validate_model(
            {"train": {"entrypoint": "train.py"}, "serve": {"capture": {"percent": 120}}},
            "models/m/model.toml",
        )
    with pytest.raises(ConfigError, match="malformed gate"):
        validate_model(
            {"train": {"entrypoint": "train.py"}, "gates": {"drift": "about 0.5"}},
            "models/m/model.toml",
        )
