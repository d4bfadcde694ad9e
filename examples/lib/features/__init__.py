"""Shared feature library of the example repository: column schemas and the data generators.

Both models list `lib/features/**` in `depends_on`, so a change here marks both changed.
"""

from features.schema import CHURN, PRICE, Schema
from features.synthetic import make_churn, make_price

__all__ = ["CHURN", "PRICE", "Schema", "make_churn", "make_price"]
