"""bench/stats.py: the sign test's interval for a median."""

from __future__ import annotations

import random

import pytest
from bench.stats import median_interval


def test_the_interval_is_the_order_statistics_the_binomial_names() -> None:
    values = [float(v) for v in (9, 1, 8, 2, 7, 3, 6, 4, 5)]  # nine rounds: the 2nd smallest to the 2nd largest
    assert median_interval(values) == (2.0, 8.0, pytest.approx(1 - 2 * 10 / 512))
    low, high, coverage = median_interval([float(v) for v in range(21)])  # 21 rounds: the 6th to the 16th
    assert (low, high) == (5.0, 15.0) and coverage == pytest.approx(0.9734, abs=1e-4)


def test_too_few_rounds_give_the_whole_range_with_its_lower_coverage() -> None:
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0, 0.75)
    with pytest.raises(ValueError):
        median_interval([])


def test_the_interval_covers_the_median_as_often_as_it_says() -> None:
    draw = random.Random(7)
    trials, covered = 4000, 0
    for _ in range(trials):
        low, high, coverage = median_interval([draw.expovariate(1.0) for _ in range(15)])
        covered += low <= 0.6931471805599453 <= high  # the exponential's median, ln 2
    assert abs(covered / trials - coverage) < 0.02
