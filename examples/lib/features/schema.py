"""The columns of each dataset: a key that identifies a row, the features, and the target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schema:
    """One dataset's columns, in the order they appear in its CSV files."""

    key: str
    features: tuple[str, ...]
    target: str

    @property
    def columns(self) -> list[str]:
        """Key, features, target: the CSV header."""
        return [self.key, *self.features, self.target]


# Churn: will this customer act on a tip? Twenty anonymised numeric features, a 0/1 label.
CHURN = Schema(key="customer_id", features=tuple(f"f{i}" for i in range(20)), target="label")

# Price: what does this flat sell for (in thousands)? Eight numeric features.
PRICE = Schema(
    key="id",
    features=(
        "area_m2",
        "rooms",
        "age_years",
        "distance_km",
        "floor",
        "has_garden",
        "energy_score",
        "lot_m2",
    ),
    target="target",
)
