"""Distribution-free statistics for the benchmarks' per-round figures."""

from __future__ import annotations

from math import comb


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """A confidence interval for the median of the population `values` were drawn from, and its actual coverage:
    the order statistics (k-th smallest, k-th largest) for the largest k whose interval still covers at least
    `confidence` (the sign test's interval: no assumption on the distribution, only independent rounds).
    With too few values for `confidence`, the whole range and its coverage."""
    if not values:
        raise ValueError("no values")
    ordered, n = sorted(values), len(values)
    # P(fewer than k of n values fall below the median) = P(Binomial(n, 1/2) < k)
    best = 1
    for k in range(1, n // 2 + 1):
        below = sum(comb(n, i) for i in range(k)) / 2**n
        if 1 - 2 * below >= confidence:
            best = k
        else:
            break
    coverage = 1 - 2 * sum(comb(n, i) for i in range(best)) / 2**n
    return ordered[best - 1], ordered[n - best], coverage
