"""Deterministic synthetic data for the example models.

Everything comes from `numpy.random.default_rng(seed)` (PCG64, the same stream on every platform)
and is rounded before it is written, so rerunning gives byte-identical CSV files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import CHURN, PRICE

CHURN_SEED = 1729
PRICE_SEED = 2718


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    # Unique six-digit ids in random order, so a sample by key is not a sample by row order.
    return rng.choice(900_000, size=n, replace=False) + 100_000


def make_churn(n: int, seed: int = CHURN_SEED) -> pd.DataFrame:
    """`n` customers: twenty correlated features of which eight carry signal, and a label.

    The label is drawn from a logistic model, so a linear classifier is the right family; the
    noise in the draw caps accuracy near 0.92.
    """
    rng = np.random.default_rng(seed)
    n_features = len(CHURN.features)
    ids = _ids(rng, n)
    # Correlated features, as real behavioural features are; different scales, so a model
    # has to standardise them.
    mixing = np.eye(n_features) + 0.3 * rng.normal(size=(n_features, n_features))
    scales = rng.uniform(0.5, 5.0, size=n_features)
    offsets = rng.uniform(-10.0, 10.0, size=n_features)
    z = rng.normal(size=(n, n_features)) @ mixing
    x = z * scales + offsets
    weights = np.zeros(n_features)
    informative = rng.choice(n_features, size=8, replace=False)
    weights[informative] = rng.normal(0.0, 1.0, size=8)
    logit = z @ weights
    logit = 7.0 * (logit - logit.mean()) / logit.std()
    label = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    frame = pd.DataFrame(x.round(4), columns=list(CHURN.features))
    frame.insert(0, CHURN.key, ids)
    frame[CHURN.target] = label
    return frame


def make_price(n: int, seed: int = PRICE_SEED) -> pd.DataFrame:
    """`n` flats with eight features and a price in thousands: mostly linear, a little not."""
    rng = np.random.default_rng(seed)
    ids = _ids(rng, n)
    area = rng.gamma(shape=6.0, scale=14.0, size=n) + 18.0
    rooms = np.clip(np.round(area / 28.0 + rng.normal(0.0, 0.7, size=n)), 1, 8)
    age = rng.uniform(0.0, 90.0, size=n)
    distance = rng.exponential(6.0, size=n)
    floor = rng.integers(0, 15, size=n)
    garden = (rng.uniform(size=n) < 0.3).astype(np.int64)
    energy = np.clip(rng.normal(60.0, 15.0, size=n) - 0.2 * age, 0.0, 100.0)
    lot = np.where(garden == 1, rng.gamma(2.0, 150.0, size=n), 0.0)

    price = (
        40.0
        + 3.1 * area
        + 12.0 * rooms
        - 0.9 * age
        - 45.0 * np.log1p(distance)  # the one curve a linear model only approximates
        + 2.5 * floor
        + 25.0 * garden
        + 0.8 * energy
        + 0.06 * lot
        + rng.normal(0.0, 30.0, size=n)
    )

    frame = pd.DataFrame(
        {
            PRICE.key: ids,
            "area_m2": area.round(1),
            "rooms": rooms.astype(np.int64),
            "age_years": age.round(1),
            "distance_km": distance.round(3),
            "floor": floor,
            "has_garden": garden,
            "energy_score": energy.round(1),
            "lot_m2": lot.round(1),
            PRICE.target: price.round(2),
        }
    )
    return frame[PRICE.columns]
