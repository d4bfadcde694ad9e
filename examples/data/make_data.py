"""Write the example datasets: data/churn/{train,test}.csv and data/price/{train,test}.csv.

Deterministic (fixed seeds in lib/features/synthetic.py, fixed float formatting), no downloads:
rerunning it rewrites byte-identical files. Run from anywhere:

    python data/make_data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

from features import make_churn, make_price  # noqa: E402 - needs the path above

SIZES = {"churn": (2000, 500), "price": (1500, 500)}


def write_split(frame: pd.DataFrame, folder: Path, n_train: int) -> None:
    """Rows are drawn independently, so the first `n_train` are the training set."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", frame.iloc[:n_train]), ("test", frame.iloc[n_train:])):
        # Values are rounded when generated; "%.10g" prints them back exactly and the same way
        # on every platform, and "\n" keeps Windows from writing different bytes.
        part.to_csv(folder / f"{name}.csv", index=False, float_format="%.10g", lineterminator="\n")


def main() -> None:
    """Generate both datasets next to this script."""
    for name, make in (("churn", make_churn), ("price", make_price)):
        n_train, n_test = SIZES[name]
        write_split(make(n_train + n_test), HERE / name, n_train)
        print(f"wrote {HERE / name}: {n_train} train rows, {n_test} test rows")


if __name__ == "__main__":
    main()
