"""bootstrap_quantiles, bca_intervals and gamma_table_weights against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from compval.errors import InvalidParameterError
from compval.stats import bca_intervals, bootstrap_quantiles, gamma_table_weights


def test_bootstrap_quantiles_match_numpy_weibull_rule_row_by_row() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 401))
    levels = rng.uniform(size=(5, 3))
    out = bootstrap_quantiles(values, levels)
    for row in range(5):
        expected = np.quantile(values[row], levels[row], method="weibull")
        np.testing.assert_allclose(out[row], expected, rtol=1e-12)


def test_bootstrap_quantiles_with_shared_levels_take_the_partial_sort_path() -> None:
    values = np.random.default_rng(1).normal(size=(7, 2000))
    levels = np.tile([0.025, 0.5, 0.975], (7, 1))
    expected = np.quantile(values, [0.025, 0.5, 0.975], axis=1, method="weibull").T
    np.testing.assert_allclose(bootstrap_quantiles(values, levels), expected, rtol=1e-12)


def test_bootstrap_quantiles_ignore_nan_and_clip_to_the_extremes() -> None:
    values = np.array([[3.0, np.nan, 1.0, 2.0], [np.nan] * 4])
    out = bootstrap_quantiles(values, [[0.0, 1.0], [0.5, 0.5]])
    assert out[0].tolist() == [1.0, 3.0]
    assert np.isnan(out[1]).all()


def _bootstrap_mean(
    rows: np.ndarray, replicates: int, seed: int
) -> tuple[float, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reps = rng.choice(rows, size=(replicates, rows.size)).mean(axis=1)
    jack = (rows.sum() - rows) / (rows.size - 1)
    return float(rows.mean()), reps, jack


def test_bca_of_a_mean_of_many_normal_rows_is_the_t_interval() -> None:
    rows = np.random.default_rng(1).normal(size=400)
    theta, reps, jack = _bootstrap_mean(rows, 4000, seed=2)
    low, high = bca_intervals([theta], [reps], [jack], confidence=0.95)
    half = stats.t.ppf(0.975, 399) * rows.std(ddof=1) / np.sqrt(400)
    assert low[0] == pytest.approx(theta - half, abs=0.1 * half)
    assert high[0] == pytest.approx(theta + half, abs=0.1 * half)


def test_bca_leans_towards_the_long_tail_of_skewed_rows() -> None:
    rows = np.random.default_rng(3).exponential(size=60)
    theta, reps, jack = _bootstrap_mean(rows, 4000, seed=4)
    low, high = bca_intervals([theta], [reps], [jack], confidence=0.95)
    # A mean of exponential rows is right-skewed: the interval reaches further up than down,
    # more so than the percentile interval of the same replicates.
    p_low, p_high = np.quantile(reps, [0.025, 0.975], method="weibull")
    assert high[0] - theta > theta - low[0]
    assert high[0] > p_high and (high[0] - low[0]) > (p_high - p_low)


def test_bca_is_wider_with_few_units_than_the_percentile_interval() -> None:
    rows = np.random.default_rng(5).normal(size=8)
    theta, reps, jack = _bootstrap_mean(rows, 4000, seed=6)
    low, high = bca_intervals([theta], [reps], [jack], confidence=0.95)
    p_low, p_high = np.quantile(reps, [0.025, 0.975], method="weibull")
    assert high[0] - low[0] > 1.2 * (p_high - p_low)  # t(7) expansion: about 1.4x


def test_bca_handles_constant_statistics_and_missing_units() -> None:
    low, high = bca_intervals(
        [1.0, 2.0],
        [[1.0] * 50, [2.0] * 50],
        [[1.0, 1.0, np.nan], [2.0, np.nan, np.nan]],
        confidence=0.95,
    )
    assert (low[0], high[0]) == (1.0, 1.0)  # no spread: the point itself
    assert np.isnan(low[1]) and np.isnan(high[1])  # one unit: no interval


def test_gamma_table_weights_are_gamma_draws_that_do_not_depend_on_the_count_asked() -> None:
    shapes = np.array([0.0, 0.5, 3.0, 40.0])
    w = gamma_table_weights(shapes, replicates=3000, seed=9, stream=1)
    assert np.all(w[:, 0] == 0)
    for j in (1, 2, 3):
        assert stats.kstest(w[:, j], stats.gamma(shapes[j]).cdf).pvalue > 0.001
    first = gamma_table_weights(shapes, replicates=70, seed=9, stream=1)
    np.testing.assert_array_equal(first, w[:70])
    assert not np.array_equal(gamma_table_weights(shapes, replicates=70, seed=9, stream=2), first)


@pytest.mark.parametrize(
    ("shapes", "replicates", "message"),
    [
        ([1.0, -1.0], 5, "finite non-negative"),
        ([[1.0]], 5, "1-D array"),
        ([1.0, np.inf], 5, "finite non-negative"),
        ([1.0], 0, "replicates: must be at least 1"),
    ],
)
def test_gamma_table_weights_errors(shapes: object, replicates: int, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        gamma_table_weights(shapes, replicates=replicates, seed=0, stream=0)  # type: ignore[arg-type]
