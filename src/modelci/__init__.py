"""modelci: continuous integration and delivery for machine-learning models kept in git."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "seed_everything"]


def seed_everything(seed: int | None = None) -> int:
    """Seed Python's `random`, NumPy and PyTorch (where installed) with one seed.

    Without an argument the seed comes from `MODELCI_SEED` (set for every training job), else 0.
    Returns the seed used.
    """
    import os
    import random

    if seed is None:
        seed = int(os.environ.get("MODELCI_SEED", "0"))
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:
        pass
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]

        torch.manual_seed(seed)
    except ImportError:
        pass
    return seed
