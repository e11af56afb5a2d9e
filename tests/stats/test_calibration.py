from __future__ import annotations

import numpy as np
import pytest

from compval.errors import InvalidParameterError
from compval.stats import calibration_bin_sums, expected_calibration_error


def direct_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """Guo et al.'s definition with explicit bin masks: sum_b |B|/N * |acc(B) - conf(B)|."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for k in range(n_bins):
        upper = confidence <= edges[k + 1] if k == n_bins - 1 else confidence < edges[k + 1]
        mask = (confidence >= edges[k]) & upper
        if mask.any():
            gap = abs(correct[mask].mean() - confidence[mask].mean())
            total += mask.sum() / confidence.size * gap
    return total


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_direct_computation(n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    confidence = np.concatenate([rng.beta(5, 2, 5000), [0.0, 1.0, 0.5]])
    correct = rng.uniform(size=confidence.size) < confidence**1.5
    sums = calibration_bin_sums(confidence, correct, n_bins=n_bins)
    assert sums[0].sum() == confidence.size
    assert expected_calibration_error(*sums) == pytest.approx(
        direct_ece(confidence, correct, n_bins), rel=1e-10
    )


def test_ece_from_merged_bin_sums_equals_one_pass() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(size=4000)
    correct = rng.uniform(size=4000) < 0.7
    one = calibration_bin_sums(confidence, correct)
    parts = [
        calibration_bin_sums(c, k)
        for c, k in zip(np.array_split(confidence, 7), np.array_split(correct, 7), strict=True)
    ]
    merged = [sum(part[i] for part in parts) for i in range(3)]
    assert expected_calibration_error(*merged) == pytest.approx(
        expected_calibration_error(*one), rel=1e-12
    )
    perfectly_calibrated = expected_calibration_error([10, 10], [2.0, 8.0], [2, 8])
    assert perfectly_calibrated == 0.0


@pytest.mark.parametrize(
    ("confidence", "correct", "message"),
    [
        ([0.5, 1.2], [1, 0], r"confidence outside \[0, 1\]; got 1 such values, e.g. 1.2"),
        ([0.5, np.nan], [1, 0], r"confidence outside \[0, 1\]; got 1 such values, e.g. nan"),
        ([0.5], [1, 0], r"lengths differ; got 1 confidences and 2 correctness flags"),
    ],
)
def test_bin_sums_errors(confidence: list[float], correct: list[int], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        calibration_bin_sums(confidence, correct)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1, 2], [0.5], [1, 1]), r"shapes differ; got \(2,\), \(1,\), \(2,\)"),
        (([0, 0], [0.0, 0.0], [0, 0]), r"no rows; got bin counts summing to 0"),
        (([-1, 2], [0.0, 1.0], [0, 1]), r"negative bin count; got min -1.0"),
    ],
)
def test_ece_errors(args: tuple[list[float], ...], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        expected_calibration_error(*args)
