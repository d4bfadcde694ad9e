"""Deterministic sampling: same rows every run, whatever the order; the fraction holds."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelci.errors import ConfigError
from modelci.testing.sampling import sample_channel, sample_file

ROWS = 10_000


def write_csv(path: Path, order_seed: int | None = None) -> list[str]:
    lines = [f"{i},{i * 0.5:.1f},{i % 7}" for i in range(ROWS)]
    if order_seed is not None:
        random.Random(order_seed).shuffle(lines)
    path.write_text("customer_id,x,y\n" + "\n".join(lines) + "\n")
    return lines


def kept_ids(path: Path) -> set[str]:
    return {line.split(",")[0] for line in path.read_text().splitlines()[1:]}


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_fraction_holds_within_one_percent(tmp_path: Path, fraction: float) -> None:
    write_csv(tmp_path / "data.csv")
    result = sample_file(
        tmp_path / "data.csv", tmp_path / "out.csv", fraction=fraction, key="customer_id", seed=42
    )
    assert result.rows == ROWS
    assert abs(result.kept / ROWS - fraction) <= 0.01
    assert len(kept_ids(tmp_path / "out.csv")) == result.kept


def test_same_rows_whatever_the_order_and_run(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    write_csv(tmp_path / "b.csv", order_seed=7)
    for name in ("a", "b"):
        sample_file(
            tmp_path / f"{name}.csv",
            tmp_path / f"{name}-out.csv",
            fraction=0.2,
            key="customer_id",
            seed=1,
        )
    assert kept_ids(tmp_path / "a-out.csv") == kept_ids(tmp_path / "b-out.csv")
    first = (tmp_path / "a-out.csv").read_bytes()
    sample_file(tmp_path / "a.csv", tmp_path / "a-out.csv", fraction=0.2, key="customer_id", seed=1)
    assert (tmp_path / "a-out.csv").read_bytes() == first


def test_the_seed_changes_the_sample(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    sample_file(tmp_path / "a.csv", tmp_path / "s1.csv", fraction=0.2, key="customer_id", seed=1)
    sample_file(tmp_path / "a.csv", tmp_path / "s2.csv", fraction=0.2, key="customer_id", seed=2)
    assert kept_ids(tmp_path / "s1.csv") != kept_ids(tmp_path / "s2.csv")


def test_without_a_key_the_row_content_decides(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    write_csv(tmp_path / "b.csv", order_seed=3)
    for name in ("a", "b"):
        sample_file(
            tmp_path / f"{name}.csv", tmp_path / f"{name}-out.csv", fraction=0.3, key=None, seed=0
        )
    assert kept_ids(tmp_path / "a-out.csv") == kept_ids(tmp_path / "b-out.csv")
    assert abs(len(kept_ids(tmp_path / "a-out.csv")) / ROWS - 0.3) <= 0.01


def test_parquet_matches_csv(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    table = pa.table({"customer_id": list(range(ROWS)), "x": [i * 0.5 for i in range(ROWS)]})
    pq.write_table(table, tmp_path / "a.parquet")
    sample_file(tmp_path / "a.csv", tmp_path / "a-out.csv", fraction=0.2, key="customer_id", seed=5)
    result = sample_file(
        tmp_path / "a.parquet", tmp_path / "out.parquet", fraction=0.2, key="customer_id", seed=5
    )
    ids = {str(v) for v in pq.read_table(tmp_path / "out.parquet").column(0).to_pylist()}
    assert ids == kept_ids(tmp_path / "a-out.csv")
    assert result.kept == len(ids)


def test_folder_channel(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "part1.csv")
    (tmp_path / "in" / "README").write_text("notes")
    results = sample_channel(
        tmp_path / "in", tmp_path / "out", fraction=0.1, key="customer_id", seed=0
    )
    assert [r.destination.name for r in results] == ["part1.csv"]
    assert (tmp_path / "out" / "README").read_text() == "notes"


def test_missing_key_column_is_named(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    with pytest.raises(ConfigError, match="no column 'user_id'") as caught:
        sample_file(tmp_path / "a.csv", tmp_path / "o.csv", fraction=0.1, key="user_id", seed=0)
    assert caught.value.key == "train.sample.key"
    assert not (tmp_path / "o.csv").exists()


def test_sample_command(git_repo, modelci) -> None:  # type: ignore[no-untyped-def]
    repo = git_repo(examples=True)
    result = modelci("-C", repo.root, "sample", "churn", "--channel", "train", "--json")
    assert result.code == 0, result.stdout
    data = result.json()
    assert data["key"] == "customer_id" and data["seed"] == 42
    assert data["files"][0]["rows"] == 2000
    assert 0.17 < data["files"][0]["kept"] / 2000 < 0.23
    bad = modelci("-C", repo.root, "sample", "churn", "--channel", "nope", "--json")
    assert bad.code == 2 and "channels: train, test" in bad.json()["error"]["message"]
