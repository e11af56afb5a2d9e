"""Seeded simulations behind docs/statistics.md's claims about the classification intervals.

Paired rows fall into: reference right / candidate wrong (rate pb), the reverse (pc), and
concordant (1 - pb - pc); the true accuracy delta is pc - pb. For every cell of the grid the
95% interval the product uses must cover the truth at least 93% of the time, and a candidate
exactly at the margin must pass (and fail) at most 2.5% of the time, up to two Monte Carlo
standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from compval.stats import clopper_pearson_intervals, tango_intervals

Z95 = 1.959963984540054
REPS = 4000
MCSE = 2 * math.sqrt(0.025 * 0.975 / REPS)
#: Two Monte Carlo standard errors of a coverage near 0.93.
COVERAGE_MCSE = 2 * math.sqrt(0.93 * 0.07 / REPS)
GRID = [
    (n, d, delta)
    for n in (40, 200, 1_000, 20_000)
    for d in (0.0, 0.005, 0.01, 0.03, 0.06)
    for delta in (0.0, -0.005, -0.01, -0.03)
    if abs(delta) <= d or (d == 0.0 and delta == 0.0)
]


def _draw(n: int, d: float, delta: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pb, pc = (d - delta) / 2, (d + delta) / 2
    counts = rng.multinomial(n, [pb, pc, 1 - d], size=REPS)
    return counts[:, 0], counts[:, 1]


@pytest.mark.parametrize(("n", "d", "delta"), GRID)
def test_tango_interval_of_the_accuracy_delta(n: int, d: float, delta: float) -> None:
    b, c = _draw(n, d, delta, seed=GRID.index((n, d, delta)))
    low, high = tango_intervals(b, c, np.full(REPS, n), z=Z95)
    coverage = np.mean((low <= delta + 1e-12) & (delta - 1e-12 <= high))
    assert coverage >= 0.93 - COVERAGE_MCSE
    # Zero flips is never certainty: the interval keeps a width of about 3.8/n.
    none = (b == 0) & (c == 0)
    assert np.all(high[none] - low[none] > 1.0 / n)
    if delta < 0:
        # The criterion "delta >= margin" with the truth exactly on the margin.
        wrong_pass = np.mean(low >= delta)
        assert wrong_pass <= 0.025 + MCSE


@pytest.mark.parametrize("n", [40, 200, 1_000, 20_000])
@pytest.mark.parametrize("p", [0.0, 0.005, 0.02, 0.1, 0.5, 0.9, 0.98, 0.995, 1.0])
def test_exact_interval_of_agreement_and_flip_rates(n: int, p: float) -> None:
    rng = np.random.default_rng(int(p * 1e4) + n)
    k = rng.binomial(n, p, size=REPS)
    low, high = clopper_pearson_intervals(k, np.full(REPS, n), confidence=0.95)
    assert np.mean((low <= p) & (p <= high)) >= 0.95 - MCSE
    assert np.all(high - low > 0)
