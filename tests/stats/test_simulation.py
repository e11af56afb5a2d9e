"""Frequentist checks by simulation: do the intervals cover, and does the gate hold its level?

Synthetic paired datasets with a known true accuracy delta. Each trial draws a 2 x 2 table
(reference correct?, candidate correct?) of n rows, computes the delta's interval, and records
whether it covers the truth and whether the non-inferiority verdict passes.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from compval.stats import (
    noninferiority_verdict,
    percentile_interval,
    poisson_table_counts,
)
from compval.stats._paired import tango_intervals

N_ROWS = 2000
TRIALS = 1000
REPLICATES = 1000
CONFIDENCE = 0.95
MARGIN = 0.02
# Cells: both right, reference only (b), candidate only (c), both wrong.
TRUE_DELTA_AT_MARGIN = np.array([0.80, 0.05, 0.03, 0.12])  # delta = 0.03 - 0.05 = -MARGIN


def bootstrap_delta_interval(table: np.ndarray, *, seed: int, stream: int) -> tuple[float, float]:
    replicate = poisson_table_counts(table, replicates=REPLICATES, seed=seed, stream=stream)
    total = replicate.sum(axis=1)
    deltas = (replicate[:, 2] - replicate[:, 1]) / total
    return percentile_interval(deltas, confidence=CONFIDENCE)


@pytest.mark.parametrize(
    "probabilities", [TRUE_DELTA_AT_MARGIN, np.array([0.86, 0.01, 0.04, 0.09])]
)
def test_bootstrap_interval_coverage_and_noninferiority_error_rate(
    probabilities: np.ndarray,
) -> None:
    rng = np.random.default_rng(2024)
    true_delta = probabilities[2] - probabilities[1]
    tables = rng.multinomial(N_ROWS, probabilities, size=TRIALS)
    covered = 0
    wrongly_passed = 0
    for trial, table in enumerate(tables):
        low, high = bootstrap_delta_interval(table, seed=99, stream=trial)
        covered += low <= true_delta <= high
        estimate = (table[2] - table[1]) / N_ROWS
        verdict = noninferiority_verdict(estimate, (low, high), op=">=", threshold=-MARGIN)
        wrongly_passed += verdict == "pass"
    coverage = covered / TRIALS
    print(
        f"\nbootstrap: true delta {true_delta:+.3f}, coverage {coverage:.3f} over {TRIALS} trials"
    )
    assert 0.93 <= coverage <= 0.97
    if np.isclose(true_delta, -MARGIN):
        pass_rate = wrongly_passed / TRIALS
        print(f"non-inferiority at the margin: wrongly passed {pass_rate:.3f} (nominal <= 0.025)")
        assert pass_rate <= 0.07


@pytest.mark.parametrize(
    ("n_rows", "probabilities", "upper"),
    [
        (2000, TRUE_DELTA_AT_MARGIN, 0.97),
        (150, np.array([0.7, 0.06, 0.02, 0.22]), 0.97),
        # About 3 discordant rows expected: the discrete score interval is conservative here.
        (60, np.array([0.9, 0.03, 0.02, 0.05]), 1.0),
    ],
)
def test_tango_interval_coverage(n_rows: int, probabilities: np.ndarray, upper: float) -> None:
    rng = np.random.default_rng(7)
    tables = rng.multinomial(n_rows, probabilities, size=20_000)
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    low, high = tango_intervals(tables[:, 1], tables[:, 2], np.full(len(tables), n_rows), z=z)
    true_delta = probabilities[2] - probabilities[1]
    coverage = np.mean((low <= true_delta) & (true_delta <= high))
    print(f"\nTango: n={n_rows}, true delta {true_delta:+.3f}, coverage {coverage:.4f}")
    assert 0.93 <= coverage <= upper
    if np.isclose(true_delta, -MARGIN):
        pass_rate = np.mean(low >= -MARGIN)
        print(f"Tango non-inferiority at the margin: wrongly passed {pass_rate:.4f}")
        assert pass_rate <= 0.05
