"""The statistical tests drift detection uses, in NumPy (no SciPy): as Evidently chooses them,
Kolmogorov-Smirnov and chi-squared on small references, Wasserstein and Jensen-Shannon on
large ones. Each returns a score and whether it says the column drifted."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

P_VALUE = 0.05  # KS and chi-squared: drift below this p-value
DISTANCE = 0.1  # Wasserstein (normed) and Jensen-Shannon: drift at or above this distance


def ks_test(reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov test's p-value (the asymptotic distribution, with
    Stephens' correction for small samples)."""
    reference, current = np.sort(reference), np.sort(current)
    n, m = len(reference), len(current)
    values = np.concatenate([reference, current])
    cdf_reference = np.searchsorted(reference, values, side="right") / n
    cdf_current = np.searchsorted(current, values, side="right") / m
    statistic = float(np.max(np.abs(cdf_reference - cdf_current)))
    effective = math.sqrt(n * m / (n + m))
    return kolmogorov_survival((effective + 0.12 + 0.11 / effective) * statistic)


def kolmogorov_survival(x: float) -> float:
    """P(K > x) for Kolmogorov's distribution."""
    if x < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101))
    return float(min(1.0, max(0.0, 2 * total)))


def chi_squared_test(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """The p-value of the chi-squared test of homogeneity of two samples' category counts
    (categories seen in either sample)."""
    categories = sorted(set(reference) | set(current))
    if len(categories) < 2:
        return 1.0
    table = np.array(
        [[reference.get(c, 0.0) for c in categories], [current.get(c, 0.0) for c in categories]]
    )
    total = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return chi_squared_survival(statistic, len(categories) - 1)


def chi_squared_survival(statistic: float, dof: int) -> float:
    """P(X > statistic) for a chi-squared distribution with `dof` degrees of freedom: the
    regularized upper incomplete gamma function Q(dof/2, statistic/2)."""
    a, x = dof / 2, statistic / 2
    if x <= 0:
        return 1.0
    if x < a + 1:  # series for the lower function P, then Q = 1 - P
        term = total = 1 / a
        for n in range(1, 1000):
            term *= x / (a + n)
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1 - total * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    # Lentz's continued fraction for Q
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - math.lgamma(a)) * h)


def wasserstein_normed(quantiles: np.ndarray, current: np.ndarray, scale: float) -> float:
    """The Wasserstein-1 distance between the reference (given by its quantile function at
    evenly spaced probabilities) and the current sample, divided by the reference's standard
    deviation, as Evidently norms it: the mean gap between the two quantile functions."""
    levels = np.linspace(0, 1, len(quantiles))
    current_quantiles = np.quantile(current, levels)
    gaps = np.abs(quantiles - current_quantiles)
    distance = float(np.sum((gaps[1:] + gaps[:-1]) / 2 * np.diff(levels)))
    return distance / scale if scale > 0 else (0.0 if distance == 0 else math.inf)


def jensen_shannon(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """The Jensen-Shannon distance (base 2, in [0, 1]) of two category distributions."""
    categories = sorted(set(reference) | set(current))
    p = np.array([reference.get(c, 0.0) for c in categories], dtype=float)
    q = np.array([current.get(c, 0.0) for c in categories], dtype=float)
    p, q = p / p.sum(), q / q.sum()
    middle = (p + q) / 2

    def divergence(a: np.ndarray) -> float:
        kept = a > 0
        return float(np.sum(a[kept] * np.log2(a[kept] / middle[kept])))

    return math.sqrt(max(0.0, (divergence(p) + divergence(q)) / 2))
